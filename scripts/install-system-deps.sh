#!/usr/bin/env bash
# System packages the test suite needs: bubblewrap (both kernel jail backends, bubblewrap
# and the package's own namespace jail, are exercised), Chromium (the trajectory viewer is
# tested in a real headless browser) and poppler-utils (PDF pages, fallback renderer).
# OpenCV is the headless build (also for the ocr extra): it needs neither libGL nor GLib.
# Jupyter Enterprise Gateway gets an environment of its own (its release pins jupyter-client
# 6, which the package's own environment cannot hold), for the remote-kernel tests through it.
# Idempotent: installs only what is missing.
set -euo pipefail
eg_venv="${CODEVISION_EG_VENV:-$HOME/.cache/langchain-codevision/enterprise-gateway}"
if [ ! -x "$eg_venv/bin/jupyter-enterprisegateway" ]; then
    python3 -m venv "$eg_venv"
    "$eg_venv/bin/python" -m pip install -qq --disable-pip-version-check \
        "jupyter_enterprise_gateway==3.3.0"
fi
pkgs=()
command -v bwrap >/dev/null 2>&1 || pkgs+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || pkgs+=(poppler-utils)
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
