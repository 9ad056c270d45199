#!/bin/sh
# The Debian packages the end-to-end tests drive (real clients, not mocks).
# Installs the missing ones when it can (root, or sudo without a password);
# otherwise says in one line what to install and fails, so the README's test
# command stops before a run that could only fail.
set -eu

packages="openssl curl tmux strace strongswan-pki libstrongswan-standard-plugins libstrongswan-extra-plugins
postgresql certmonger softhsm2 opensc default-jdk-headless librsvg2-bin passwd util-linux"

command -v dpkg-query >/dev/null 2>&1 || {
    echo "install-test-deps: not a Debian system; install the equivalents of: $(echo $packages)" >&2
    exit 1
}

missing=""
# Debian's own python3 makes venvs only with python3-venv (ensurepip); another
# Python (pyenv, a container image) brings its own.
python3 -c 'import ensurepip' 2>/dev/null || packages="$packages python3-venv"
for package in $packages; do
    status=$(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $package"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "install-test-deps: the tests need these Debian packages; run: sudo apt-get install$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing$missing" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $as_root apt-get update -qq && $as_root apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "install-test-deps: apt-get failed (above); run: sudo apt-get install$missing" >&2
    exit 1
fi
