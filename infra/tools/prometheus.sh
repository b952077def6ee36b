#!/usr/bin/env bash
# Install Prometheus (Debian package; it ships promtool) when running as root and it is missing.
# The tests start their own Prometheus on 127.0.0.1, so the Debian service is stopped and
# disabled right after install. Idempotent; never fails the build: says what is missing.
set -u
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus.sh: $(prometheus --version 2>&1 | head -n 1) already installed"
  exit 0
fi
. "$(dirname "$0")/lib/apt_install.sh"
apt_install prometheus.sh prometheus "promtool and Prometheus tests will skip"
# Should a service manager have started it anyway, stop it: tests run their own instance.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl stop prometheus >/dev/null 2>&1 || true
  systemctl disable prometheus >/dev/null 2>&1 || true
elif command -v service >/dev/null 2>&1; then
  service prometheus stop >/dev/null 2>&1 || true
fi
if command -v promtool >/dev/null 2>&1; then
  echo "prometheus.sh: installed $(prometheus --version 2>&1 | head -n 1)"
fi
exit 0
