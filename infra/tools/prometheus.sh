#!/usr/bin/env bash
# Install Prometheus (Debian package; it ships promtool) when running as root and it is missing.
# The tests start their own Prometheus on 127.0.0.1, so the Debian service is stopped and
# disabled right after install. Idempotent; never fails the build: says what is missing.
set -u
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus.sh: $(prometheus --version 2>&1 | head -n 1) already installed"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "prometheus.sh: prometheus/promtool missing and not root with apt-get; install the" \
       "'prometheus' package by hand (promtool and Prometheus tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 = "do not start services" while dpkg configures the package.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod 0755 "$POLICY" && OWN_POLICY=1
fi
if ! apt-get install -y -q --no-install-recommends prometheus >/tmp/prometheus-apt.log 2>&1; then
  apt-get update -q >/dev/null 2>&1
  apt-get install -y -q --no-install-recommends prometheus >/tmp/prometheus-apt.log 2>&1 \
    || { echo "prometheus.sh: apt-get install prometheus failed (see /tmp/prometheus-apt.log);" \
              "promtool and Prometheus tests will skip" >&2; }
fi
[ "$OWN_POLICY" = "1" ] && rm -f "$POLICY"
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
