#!/usr/bin/env bash
# Puts Prometheus's promtool at .tools/promtool (the metrics test checks /metrics with
# `promtool check metrics`). Taken from Debian's prometheus package without installing it:
# no service, nothing outside the checkout. Idempotent; prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=.tools/promtool
if [ -x "$target" ]; then echo "$PWD/$target"; exit 0; fi
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  if ! apt-get download prometheus >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get download prometheus >/dev/null 2>&1
  fi
  dpkg-deb -x prometheus_*.deb extracted
)
mkdir -p .tools
cp "$work/extracted/usr/bin/promtool" "$target"
echo "$PWD/$target"
