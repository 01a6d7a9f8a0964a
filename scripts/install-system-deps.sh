#!/usr/bin/env bash
# System packages the test suite needs: bubblewrap, so both kernel jail backends
# (bubblewrap and the package's own namespace jail) are exercised. Idempotent.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bubblewrap is missing: install it with your OS package manager (e.g. apt-get install bubblewrap)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends bubblewrap >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends bubblewrap >/dev/null
}
command -v bwrap >/dev/null
