#!/usr/bin/env bash
# Headless Chromium for tests/test_report_browser.py (it opens report.html): Debian's
# `chromium` package, installed when missing and this user can (root, or sudo without a
# password); otherwise a message naming the package, and the browser test fails saying so.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
install=(apt-get install -y -qq chromium)
if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${install[@]}"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive "${install[@]}"
else
    echo "chromium: not installed, and installing it needs root: sudo apt-get install -y chromium" \
         "(the report's browser test fails until then)" >&2
fi
