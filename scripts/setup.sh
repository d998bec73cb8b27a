#!/usr/bin/env bash
# Set up a checkout for `binhub demo` and the tests: the MariaDB server the sandboxes run, and a
# virtualenv in .venv with binhub installed editable plus its test extras.
#
# Made for a fresh Debian 12 machine run as root (or a user with sudo); safe to run again: each
# step is skipped when already done, so a second run takes about a second and needs no network.
# The Debian mariadb service may get started by the package's postinst; that is harmless, the
# sandboxes run their own servers with --no-defaults on other ports.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }
# Debian keeps mariadbd in /usr/sbin, which is not on a normal user's PATH.
have_sbin() { have "$1" || [ -x "/usr/sbin/$1" ]; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root to run: $* (run this script as root or install sudo)"
    fi
}

apt_packages=()
if ! have_sbin mariadbd || ! have mariadb-install-db || ! have mariadb; then
    apt_packages+=(mariadb-server mariadb-client)
fi
# The physical backup tests prepare binhub's output with the server's own mariadb-backup.
if ! have mariadb-backup; then
    apt_packages+=(mariadb-backup)
fi
if ! have python3; then
    apt_packages+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    # Debian splits venv/ensurepip out of python3.
    apt_packages+=(python3-venv)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    have apt-get || die "missing ${apt_packages[*]} and no apt-get here: install them with your package manager"
    say "installing ${apt_packages[*]} with apt-get"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_packages[@]}"
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "binhub needs Python >= 3.11, python3 is $(python3 -V 2>&1)"

if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    say "creating .venv"
    rm -rf .venv
    python3 -m venv .venv
fi

# Reinstall only when the build inputs changed since the last successful install (or the install is
# broken): pip would otherwise spend seconds and the network re-checking everything on every run.
# The install also compiles the optional C extension (binhub/_speedups), so its source counts too.
stamp=.venv/.binhub-setup-stamp
want="$(cat pyproject.toml setup.py binhub/_speedups/*.c binhub/_speedups/*.h | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] \
    || ! .venv/bin/python -c 'import binhub, pytest' >/dev/null 2>&1 \
    || [ ! -x .venv/bin/binhub ]; then
    say "installing binhub (editable) with test extras into .venv"
    .venv/bin/python -m pip install -q -e '.[test]'
    printf '%s\n' "$want" > "$stamp"
fi

say "ready: .venv/bin/binhub demo | .venv/bin/python -m pytest -q"
