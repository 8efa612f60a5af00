#!/usr/bin/env bash
# Install, from Debian's packages, what pip cannot provide: each argument is NEED:PACKAGE,
# where NEED is a command or an absolute file path. With none, it is what the tests need:
# pdftotext (poppler-utils), the DejaVu Sans font the orientation tests draw pages with, and
# Droid Sans Fallback for the vertical Chinese and Japanese pages (demo/vertical.py).
# Already present means no apt at all, so `make test` pays nothing once they are there.
# `make bench` also passes Tesseract for the OCRmyPDF peer (OCRMYPDF_TOOLS in the Makefile:
# tesseract-ocr, tesseract-ocr-eng); `make test` never asks for them.
set -euo pipefail
(( $# )) || set -- pdftotext:poppler-utils /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core \
  /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf:fonts-droid-fallback
present() { if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi; }
missing=()
for need in "$@"; do
  present "${need%%:*}" || missing+=("${need#*:}")
done
(( ${#missing[@]} )) || exit 0
echo "tools: not installed; installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for need in "$@"; do
  present "${need%%:*}" || { echo "tools: ${need%%:*} still missing after installing ${need#*:}" >&2; exit 1; }
done
