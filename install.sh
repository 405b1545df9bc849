#!/usr/bin/env bash
# One command from a fresh clone: the system package zoo's offline audio demo needs (espeak-ng,
# which synthesises `--data spoken-digits`), then zoo with everything the demo and the tests need.
# Extra arguments go to pip (e.g. ./install.sh --no-cache-dir).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v espeak-ng >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get install -y --no-install-recommends espeak-ng \
            || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends espeak-ng; }
    else
        echo "install.sh: no apt-get here; install espeak-ng with your system's package manager" \
             "(it is needed only for --data spoken-digits and its tests)" >&2
    fi
fi
# Debian's chromium: the browser test of zoo serve's page drives it (Playwright cannot download one here).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
        || echo "install.sh: could not install chromium; the browser test of zoo serve's page will be skipped" >&2
fi
# Debian's tuxpaint-stamps-default: the photographs `--data photos` is made from (the README's main job).
if ! dpkg-query -W -f='${Status}' tuxpaint-stamps-default 2>/dev/null | grep -q "ok installed" \
        && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends tuxpaint-stamps-default >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends tuxpaint-stamps-default >/dev/null; } \
        || echo "install.sh: could not install tuxpaint-stamps-default; --data photos and its tests need it" >&2
fi
python -m pip install -e ".[dev]" "$@"
