#!/usr/bin/env bash
# Install, from Debian's packages, commands that pip cannot provide: each argument is
# COMMAND:PACKAGE, and with none it is what the tests need (pdftotext, from poppler-utils).
# Already present means no apt at all, so `make test` pays nothing once they are there.
set -euo pipefail
(( $# )) || set -- pdftotext:poppler-utils
missing=()
for tool in "$@"; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
(( ${#missing[@]} )) || exit 0
echo "tools: not installed; installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "$@"; do
  command -v "${tool%%:*}" >/dev/null || { echo "tools: ${tool%%:*} still missing after installing ${tool#*:}" >&2; exit 1; }
done
