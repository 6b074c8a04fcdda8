#!/usr/bin/env bash
# Make a headless Chromium and its ChromeDriver available for the report's browser test.
# Idempotent: does nothing when both are on PATH. Installs Debian's packages as root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "test browser: $(chromium --version 2>/dev/null | head -1)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the report's browser test needs chromium and chromedriver on PATH;" >&2
    echo "       install them (Debian: apt-get install chromium chromium-driver)." >&2
    exit 1
fi
echo "test browser: installing Debian's chromium and chromium-driver"
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "test browser: $(chromium --version 2>/dev/null | head -1)"
