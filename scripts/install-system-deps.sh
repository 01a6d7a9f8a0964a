#!/usr/bin/env bash
# System packages the test suite needs: bubblewrap (both kernel jail backends, bubblewrap
# and the package's own namespace jail, are exercised), Chromium (the trajectory viewer is
# tested in a real headless browser), poppler-utils (PDF pages, fallback renderer) and the
# GL and GLib libraries that OpenCV's GUI build loads.
# Idempotent: installs only what is missing.
set -euo pipefail
pkgs=()
command -v bwrap >/dev/null 2>&1 || pkgs+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || pkgs+=(poppler-utils)
# rapidocr-onnxruntime (the ocr extra) pulls opencv-python, whose cv2 replaces the headless
# build's files and loads libGL and GLib at import.
ldconfig -p | grep 'libGL\.so\.1 ' >/dev/null || pkgs+=(libgl1)
ldconfig -p | grep 'libglib-2\.0\.so\.0 ' >/dev/null || pkgs+=(libglib2.0-0)
[ ${#pkgs[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${pkgs[*]}: install them with your OS package manager (e.g. apt-get install ${pkgs[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null
}
command -v bwrap >/dev/null && command -v chromium >/dev/null && command -v pdftoppm >/dev/null
