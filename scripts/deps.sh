#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install everything the project needs on Debian 12 (bookworm).
# Idempotent: when every package is present at a suitable version it only
# checks and returns.  Runs as root, or through sudo.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install packages"
    SUDO=sudo
fi

PKGS=(
    build-essential pkg-config git xz-utils ca-certificates
    ninja-build flex bison python3 python3-venv dpkg-dev
    libglib2.0-dev libpixman-1-dev libzstd-dev libslirp-dev libfdt-dev
    libibverbs-dev librdmacm-dev libcmocka-dev libxxhash-dev
    seabios ipxe-qemu qemu-system-data
    iproute2 socat ibverbs-providers
    busybox-static e2fsprogs python3-matplotlib
    clang libclang-rt-14-dev
    libxml2-dev libgnutls28-dev libjson-c-dev libtirpc-dev
    libnl-3-dev libnl-route-3-dev xsltproc
)
MESON_MIN=1.5.0
# SeaBIOS 1.16.2 (bookworm) hits a 32 s AHCI command timeout on QEMU 10.2
# before it boots from disk ("Timeout at ahci_command"): every qtest
# guest would wait for it.  bookworm-backports has the fix.
SEABIOS_MIN=1.16.3

BACKPORTS_LIST=/etc/apt/sources.list.d/mig-transport-backports.sources
DEBSRC_LIST=/etc/apt/sources.list.d/mig-transport-sid-src.sources
# libvirt 11.3.0's tarball (scripts/libvirt.sh fetch) is in trixie's and
# bookworm-backports' source packages.
LV_DEBSRC_LIST=/etc/apt/sources.list.d/mig-transport-libvirt-src.sources

write_if_changed() {
    local file=$1 content=$2
    if [ ! -f "$file" ] || [ "$(cat "$file")" != "$content" ]; then
        printf '%s\n' "$content" | $SUDO tee "$file" >/dev/null
        return 0
    fi
    return 1
}

missing_pkgs() {
    local p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q '^install ok installed' || echo "$p"
    done
}

version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

seabios_ok() {
    local v
    v=$(dpkg-query -W -f='${Version}' seabios 2>/dev/null) || return 1
    version_ge "$v" "$SEABIOS_MIN"
}

meson_ok() {
    command -v meson >/dev/null || return 1
    local v
    v=$(meson --version 2>/dev/null) || return 1
    [ "$(printf '%s\n%s\n' "$MESON_MIN" "$v" | sort -V | head -n1)" = "$MESON_MIN" ]
}

changed=0
write_if_changed "$BACKPORTS_LIST" "Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" && changed=1
write_if_changed "$DEBSRC_LIST" "Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" && changed=1
write_if_changed "$LV_DEBSRC_LIST" "Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" && changed=1

need=$(missing_pkgs | tr '\n' ' ')
if [ "$changed" = 0 ] && [ -z "$need" ] && meson_ok && seabios_ok; then
    info "deps: all packages present (meson $(meson --version))"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
info "deps: apt-get update"
$SUDO apt-get update -qq
if [ -n "$need" ]; then
    info "deps: installing $need"
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need
fi
if ! meson_ok; then
    info "deps: installing meson >= $MESON_MIN from bookworm-backports"
    $SUDO apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports meson
fi
if ! seabios_ok; then
    info "deps: installing seabios >= $SEABIOS_MIN from bookworm-backports"
    $SUDO apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports seabios
fi
meson_ok || die "meson >= $MESON_MIN not available after install"
seabios_ok || die "seabios >= $SEABIOS_MIN not available after install"
info "deps: done (meson $(meson --version))"
