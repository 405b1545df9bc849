#!/usr/bin/env bash
# One command from a fresh clone: the Debian packages zoo's offline demos and tests use, then zoo
# with everything the demos and the tests need, into the Python environment that runs this script
# (CI runs it in a new virtual environment: .ci/run). Extra arguments go to pip
# (e.g. ./install.sh --no-cache-dir).
#   espeak-ng                  the voices of `--data spoken-digits` (the audio demo)
#   tuxpaint-stamps-default    the photographs of `--data photos` (the README's main job)
#   chromium                   the real browser the tests of zoo serve's page and the report page drive
set -euo pipefail
cd "$(dirname "$0")"

# apt_package PACKAGE COMMAND WHY: install a Debian package when COMMAND (or, with "-", the package
# itself) is missing; quiet and idempotent; without apt, say what needs it.
apt_package() {
    local package=$1 command=$2 why=$3 sudo=""
    if [ "$command" != "-" ] && command -v "$command" >/dev/null 2>&1; then return 0; fi
    if [ "$command" = "-" ] && dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install.sh: no apt-get here; install $package with your system's package manager ($why)" >&2
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null; } \
        || echo "install.sh: could not install $package ($why)" >&2
}

apt_package espeak-ng espeak-ng "it is needed only for --data spoken-digits and its tests"
apt_package tuxpaint-stamps-default - "--data photos and its tests need it"
apt_package chromium chromium "the browser tests of zoo serve's page and the report page are skipped without it"
python -m pip install -e ".[dev]" "$@"
