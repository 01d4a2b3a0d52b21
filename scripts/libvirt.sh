#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The libvirt half of the project: libvirt 11.3.0 with the patches of
# libvirt/series, built with only what the QEMU driver and virsh need.
#
#   libvirt.sh fetch     the release tarball into build/dl/, sha256 verified:
#                        Debian's archive first, ../shared/libvirt-src/ if
#                        the archive fails
#   libvirt.sh prepare   build/libvirt: a git repository of the unpacked
#                        tarball (one commit, tagged "base") with the
#                        patches applied by git am; an unchanged prefix of
#                        the series is kept
#   libvirt.sh build     configure (again when MESON_OPTS change) and build
#                        virsh, virtqemud, the QEMU driver and the unit
#                        tests we run, in build/libvirt/build
#   libvirt.sh regen     rewrite libvirt/patches and libvirt/series from the
#                        commits base..HEAD of build/libvirt
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$TOP/libvirt/base.conf"

DL=$BUILD/dl
LV_SRC=$BUILD/libvirt
LV_BLD=$LV_SRC/build
STATE=$LV_SRC/.git/mig-transport
SHARED=${SHARED_LIBVIRT_SRC:-$TOP/../shared/libvirt-src}

# What make libvirt builds: the programs the end-to-end tier runs and the
# unit tests of the code the patches touch.
TARGETS=(
    tools/virsh src/virtqemud src/virtlogd src/libvirt_driver_qemu.so
    tests/qemumigparamstest tests/qemumonitorjsontest
    tests/qemumigrationcookiexmltest tests/virshtest
    tests/libvirpcimock.so tests/libvirrandommock.so
    tests/libdomaincapsmock.so tests/libvirhostidmock.so
)

# Only the QEMU driver, the remote driver virsh talks through, and the
# daemons; everything that is auto-detected is pinned so that a package
# installed later does not change the build.
MESON_OPTS=(
    --buildtype=debugoptimized -Dwerror=false -Dgit_werror=disabled
    -Ddocs=disabled -Dtests=enabled -Dexpensive_tests=disabled
    -Ddriver_qemu=enabled -Ddriver_remote=enabled -Ddriver_libvirtd=enabled
    -Ddriver_test=enabled -Dlibnl=enabled
    -Ddriver_network=disabled -Ddriver_interface=disabled
    -Ddriver_lxc=disabled -Ddriver_ch=disabled -Ddriver_libxl=disabled
    -Ddriver_bhyve=disabled -Ddriver_esx=disabled -Ddriver_hyperv=disabled
    -Ddriver_openvz=disabled -Ddriver_vbox=disabled -Ddriver_vmware=disabled
    -Ddriver_vz=disabled -Ddriver_secrets=disabled
    -Dstorage_dir=disabled -Dstorage_fs=disabled -Dstorage_disk=disabled
    -Dstorage_lvm=disabled -Dstorage_iscsi=disabled
    -Dstorage_iscsi_direct=disabled -Dstorage_mpath=disabled
    -Dstorage_rbd=disabled -Dstorage_scsi=disabled -Dstorage_gluster=disabled
    -Dstorage_vstorage=disabled -Dstorage_zfs=disabled
    -Dnss=disabled -Dlogin_shell=disabled -Dhost_validate=disabled
    -Dwireshark_dissector=disabled -Dpolkit=disabled -Dsanlock=disabled
    -Dnbdkit=disabled -Dbash_completion=disabled -Dsasl=disabled
    -Dlibssh=disabled -Dlibssh2=disabled -Dnls=disabled -Dapparmor=disabled
    -Dsecdriver_apparmor=disabled -Dselinux=disabled
    -Dsecdriver_selinux=disabled -Ddtrace=disabled -Dfirewalld=disabled
    -Dfirewalld_zone=disabled -Dinit_script=none -Dudev=disabled
    -Dpciaccess=disabled -Dnumactl=disabled -Dcapng=disabled -Daudit=disabled
    -Dfuse=disabled -Dcurl=disabled -Dglusterfs=disabled -Dlibiscsi=disabled
    -Dopenwsman=disabled -Dnetcf=disabled -Dlibpcap=disabled
    -Dreadline=disabled -Dblkid=disabled -Dattr=disabled -Dnumad=disabled
    -Dpm_utils=disabled
)

git_q() { git -C "$LV_SRC" -c user.name=prepare -c user.email=prepare@localhost \
              -c commit.gpgsign=false "$@"; }

verify() {
    [ -f "$DL/$LV_TARBALL" ] &&
        echo "$LV_SHA256  $DL/$LV_TARBALL" | sha256sum --quiet -c - 2>/dev/null
}

do_fetch() {
    mkdir -p "$DL"
    if verify; then
        info "libvirt: $LV_TARBALL present and verified"
        return
    fi
    rm -f "$DL/$LV_TARBALL"
    # The .dsc of this version was missing from the archive when checked:
    # apt-get may fail after fetching the tarball, so the checksum decides.
    info "libvirt: apt-get source --download-only $LV_PKG=$LV_VERSION"
    (cd "$DL" && apt-get source --download-only "$LV_PKG=$LV_VERSION") \
        >"$DL/apt-source-libvirt.log" 2>&1 || true
    if verify; then
        info "libvirt: using the Debian archive's tarball; sha256 verified"
        return
    fi
    info "libvirt: archive failed or checksum mismatch (see $DL/apt-source-libvirt.log)"
    rm -f "$DL/$LV_TARBALL"
    [ -f "$SHARED/$LV_TARBALL" ] || die "no fallback copy at $SHARED"
    cp "$SHARED/$LV_TARBALL" "$DL/"
    verify || die "sha256 mismatch in fallback copy $SHARED/$LV_TARBALL"
    info "libvirt: using fallback copy $(cd "$SHARED" && pwd); sha256 verified"
}

do_prepare() {
    do_fetch
    if [ ! -d "$LV_SRC/.git" ] || [ "$(cat "$STATE/base-id" 2>/dev/null)" != "$LV_SHA256" ]; then
        info "libvirt: unpacking $LV_TARBALL into $LV_SRC"
        rm -rf "$LV_SRC"
        mkdir -p "$LV_SRC"
        tar -xJf "$DL/$LV_TARBALL" -C "$LV_SRC" --strip-components=1
        git -C "$LV_SRC" init -q -b master
        git -C "$LV_SRC" config user.name "Migration Transport Developers"
        git -C "$LV_SRC" config user.email "mig-transport@invalid"
        # keycodemapdb is a git submodule upstream, with its own style: out
        # of the tree's index, so that libvirt's syntax-check skips it.
        printf '/build/\n/subprojects/keycodemapdb/\n' > "$LV_SRC/.git/info/exclude"
        git_q add -A --force
        git_q rm -r -q --cached subprojects/keycodemapdb
        GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
            git_q commit -q -m "base: libvirt $LV_UPSTREAM"
        git_q tag base
        mkdir -p "$STATE"
        echo "$LV_SHA256" > "$STATE/base-id"
        : > "$STATE/applied"
    fi

    apply_series "$LV_SRC" "$TOP/libvirt/series" "$TOP/libvirt/patches" \
        "libvirt patch" "scripts/libvirt.sh regen"
}


do_build() {
    do_prepare
    local opts reconf=()
    opts=$(printf '%s\n' "${MESON_OPTS[@]}" | sha256sum | cut -c1-16)
    if [ -f "$LV_BLD/build.ninja" ] &&
       [ "$(cat "$LV_BLD/.mig-options" 2>/dev/null)" != "$opts" ]; then
        reconf=(--reconfigure)
    fi
    if [ ! -f "$LV_BLD/build.ninja" ] || [ ${#reconf[@]} -gt 0 ]; then
        info "libvirt: configuring $LV_BLD"
        meson setup "${reconf[@]}" "$LV_BLD" "$LV_SRC" "${MESON_OPTS[@]}" \
            >"$BUILD/libvirt-configure.log" 2>&1 ||
            die "libvirt: meson setup failed, see $BUILD/libvirt-configure.log"
        echo "$opts" > "$LV_BLD/.mig-options"
    fi
    info "libvirt: building ${TARGETS[*]}"
    ninja -C "$LV_BLD" "${TARGETS[@]}" >"$BUILD/libvirt-build.log" 2>&1 ||
        { tail -n 40 "$BUILD/libvirt-build.log" >&2; die "libvirt: build failed, see $BUILD/libvirt-build.log"; }
    info "libvirt: built ($LV_BLD/tools/virsh)"
}


do_regen() {
    [ -d "$LV_SRC/.git" ] || die "libvirt: $LV_SRC is not prepared"
    [ -z "$(git_q status --porcelain --untracked-files=no)" ] ||
        die "libvirt: commit your changes in $LV_SRC first"
    local tmp i p name
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    git_q format-patch -q -N --zero-commit --no-signature --no-stat \
        --full-index -o "$tmp" base..HEAD
    {
        echo "# libvirt patches, applied in this order with git am on libvirt $LV_UPSTREAM."
        echo "# Regenerate with scripts/libvirt.sh regen after committing in build/libvirt."
    } > "$tmp/series"
    : > "$tmp/applied"
    local commits
    mapfile -t commits < <(git_q rev-list --reverse base..HEAD)
    i=0
    for p in "$tmp"/[0-9][0-9][0-9][0-9]-*.patch; do
        [ -e "$p" ] || continue
        name=$(basename "$p")
        echo "$name" >> "$tmp/series"
        echo "$(sha256sum < "$p" | cut -c1-64) ${commits[$i]} $name" >> "$tmp/applied"
        i=$((i + 1))
    done
    rm -f "$TOP/libvirt/patches"/*.patch
    mkdir -p "$TOP/libvirt/patches"
    for p in "$tmp"/*.patch; do
        [ -e "$p" ] && cp "$p" "$TOP/libvirt/patches/"
    done
    cp "$tmp/series" "$TOP/libvirt/series"
    cp "$tmp/applied" "$STATE/applied"
    info "libvirt: $i patch(es) in libvirt/patches"
}

case "${1:-}" in
fetch) do_fetch ;;
prepare) do_prepare ;;
build) do_build ;;
regen) do_regen ;;
*) die "usage: $0 fetch|prepare|build|regen" ;;
esac
