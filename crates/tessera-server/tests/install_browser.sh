#!/usr/bin/env bash
# Installs what tests/studio_e2e.py needs: Debian's chromium and chromedriver
# (no browser downloads; Debian builds chromium against system ffmpeg, so it
# plays the H.264 MP4s the server writes) and selenium in a virtualenv.
# Idempotent; quiet on success, loud on failure.
set -euo pipefail

VENV="${TESSERA_CI_VENV:-/tmp/tessera-ci-venv}"

if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    if ! { $SUDO apt-get update -qq && \
           $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "install_browser.sh: apt-get install chromium chromium-driver failed" >&2
        exit 1
    fi
    rm -f "$log"
fi
for bin in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$bin" ] || { echo "install_browser.sh: $bin is missing after apt-get install" >&2; exit 1; }
done

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { echo "install_browser.sh: cannot create venv $VENV" >&2; exit 1; }
fi
if ! "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check selenium
fi
"$VENV/bin/python" -c 'import selenium' || { echo "install_browser.sh: selenium did not install into $VENV" >&2; exit 1; }
echo "install_browser.sh: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), selenium in $VENV"
