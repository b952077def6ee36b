# Sourced by the tool scripts beside it (not run by `make tools`: it lives in lib/).
# apt_install TOOL PACKAGE SKIPS: install Debian's PACKAGE as root with apt-get, services not
# started (policy-rc.d 101 while dpkg configures it: a package's unit must not load the host's
# configuration or start a second instance), retrying once after `apt-get update`. Never fails the
# build: when it cannot install, it says so on stderr, naming PACKAGE and what SKIPS.
apt_install() {
  local tool=$1 package=$2 skips=$3
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$tool: missing and not root with apt-get; install the '$package' package by hand ($skips)" >&2
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d own_policy=0 log="/tmp/$package-apt.log"
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
  fi
  if ! apt-get install -y -q --no-install-recommends "$package" >"$log" 2>&1; then
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends "$package" >"$log" 2>&1 \
      || echo "$tool: apt-get install $package failed (see $log); $skips" >&2
  fi
  [ "$own_policy" = "1" ] && rm -f "$policy"
  return 0
}
