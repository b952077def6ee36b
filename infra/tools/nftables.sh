#!/usr/bin/env bash
# Install nftables (Debian package `nftables`: the `nft` command) when running as root and it is
# missing. The cluster rehearsal enforces the chart's NetworkPolicies with nft rules in each pod's
# network namespace; without it those tests skip, naming nft. Idempotent; never fails the build.
set -u
if command -v nft >/dev/null 2>&1; then
  echo "nftables.sh: $(nft --version 2>&1 | head -n 1) already installed"
  exit 0
fi
. "$(dirname "$0")/lib/apt_install.sh"
apt_install nftables.sh nftables "the cluster rehearsal tests will skip"
if command -v nft >/dev/null 2>&1; then
  echo "nftables.sh: installed $(nft --version 2>&1 | head -n 1)"
fi
exit 0
