#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the benchmark guest from Debian packages, cached under build/guest/:
#
#   build/guest/kernel/<pkg>/  the kernel package that linux-image-amd64
#                              depends on (apt-get download + dpkg -x)
#   build/guest/bin/           the workload programs, static (bench/workloads)
#   build/guest/initrd.img     busybox-static, /init, the virtio-blk + ext4
#                              modules, the workload programs
#   build/guest/disk.img       ext4 made with mkfs.ext4 -d from generated
#                              files, plus MANIFEST (their checksums)
#   build/guest/guest.env      what the harness reads: paths and versions
#
# Re-running rebuilds only what changed (a hash of the inputs is kept).
# --force rebuilds everything except the downloaded kernel package.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/../lib.sh"

# GUEST_NAME: another guest beside the default one, e.g. make
# bench-headline's, with a larger disk (DISK_FILES) under build/guest-headline
G=$BUILD/${GUEST_NAME:-guest}
FORCE=0
[ "${1:-}" = --force ] && FORCE=1

# Disk contents: DISK_FILES files of DISK_FILE_MIB MiB each.
DISK_FILES=${DISK_FILES:-24}
DISK_FILE_MIB=${DISK_FILE_MIB:-8}
# ext4's own room: 64 MiB, and 1/16 more for the journal and inode tables
# of a larger disk
DISK_MIB=$((DISK_FILES * DISK_FILE_MIB * 17 / 16 + 64))

# Modules for a virtio disk with ext4, in load order (guest-notes.md).
MODULES="virtio_pci_modern_dev virtio_pci_legacy_dev virtio_ring virtio
virtio_pci virtio_blk crc32c_generic jbd2 mbcache crc16 ext4"

for t in busybox mkfs.ext4 gcc dpkg-deb apt-get gzip python3; do
    command -v "$t" >/dev/null || die "guest: '$t' is missing (make deps)"
done
busybox_static=/bin/busybox
[ -x "$busybox_static" ] && file_is_static=$(LC_ALL=C readelf -d \
    "$busybox_static" 2>/dev/null | grep -c NEEDED || true)
[ "${file_is_static:-1}" = 0 ] ||
    die "guest: /bin/busybox is not the static busybox (install busybox-static)"
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] ||
    die "guest: libc.a missing (install libc6-dev)"

mkdir -p "$G/dl" "$G/kernel" "$G/bin"

# --- kernel: resolve through the meta package ------------------------------
resolve_kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ && !f { print $2; f = 1 }'
}
KPKG=$(resolve_kernel_pkg || true)
if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ] && [ ! -f "$G/guest.env" ]; then
    info "guest: no linux-image-amd64 in the package lists; apt-get update"
    apt-get update -qq || true
    KPKG=$(resolve_kernel_pkg || true)
fi
if [ -z "$KPKG" ]; then
    # An empty or stale package list: use the kernel cached last time.
    KPKG=$(sed -n 's/^KPKG=//p' "$G/guest.env" 2>/dev/null || true)
    [ -n "$KPKG" ] || die "guest: cannot resolve linux-image-amd64 (run apt-get update)"
    info "guest: apt-cache gave no kernel; using cached $KPKG"
fi
KROOT=$G/kernel/$KPKG
if [ ! -f "$KROOT/.done" ]; then
    info "guest: downloading $KPKG"
    rm -rf "$KROOT" "$G/dl/${KPKG}_"*.deb
    (cd "$G/dl" && apt-get download "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
        true
    debs=("$G/dl/${KPKG}_"*.deb)
    deb=${debs[0]}
    [ -f "$deb" ] || die "guest: apt-get download $KPKG failed"
    mkdir -p "$KROOT"
    dpkg -x "$deb" "$KROOT"
    touch "$KROOT/.done"
fi
KVER=${KPKG#linux-image-}
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "guest: $VMLINUZ missing in $KPKG"
MODDIR=$KROOT/lib/modules/$KVER

# --- inputs hash: rebuild the rest when any of them changes -----------------
inputs_hash() {
    {
        echo "$KPKG $DISK_FILES $DISK_FILE_MIB $MODULES"
        busybox | head -n1
        cat "$here/init" "$here/gen-files.py" "$0" "$TOP"/bench/workloads/*.[ch]
    } | sha256sum | cut -c1-16
}
HASH=$(inputs_hash)
if [ "$FORCE" = 0 ] && [ -f "$G/guest.env" ] &&
   grep -qx "HASH=$HASH" "$G/guest.env" &&
   [ -f "$G/initrd.img" ] && [ -f "$G/disk.img" ]; then
    info "guest: cached ($KPKG, $G)"
    exit 0
fi
rm -f "$G/guest.env"

# --- workload programs -----------------------------------------------------
info "guest: building workloads (static)"
for src in "$TOP"/bench/workloads/*.c; do
    name=$(basename "$src" .c)
    gcc -O2 -static -Wall -Wextra -Wno-unused-parameter \
        -o "$G/bin/$name" "$src"
done

# --- initramfs -------------------------------------------------------------
info "guest: building initramfs"
R=$G/initramfs.d
rm -rf "$R"
mkdir -p "$R/bin" "$R/usr/bin" "$R/lib/modules" "$R/dev" "$R/proc" \
    "$R/sys" "$R/run" "$R/tmp" "$R/mnt"
cp "$busybox_static" "$R/bin/busybox"
cp "$here/init" "$R/init"
chmod 755 "$R/init"
cp "$G"/bin/* "$R/usr/bin/"
: >"$R/lib/modules/load-order"
for m in $MODULES; do
    ko=$(find "$MODDIR/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" \) \
         -print -quit)
    [ -n "$ko" ] || die "guest: module $m not in $KPKG"
    case "$ko" in
    *.xz) xz -dc "$ko" >"$R/lib/modules/$m.ko" ;;
    *) cp "$ko" "$R/lib/modules/$m.ko" ;;
    esac
    echo "$m" >>"$R/lib/modules/load-order"
done
(cd "$R" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null |
    gzip -1 >"$G/initrd.img.tmp")
mv "$G/initrd.img.tmp" "$G/initrd.img"

# --- shared disk -----------------------------------------------------------
info "guest: generating ${DISK_FILES} x ${DISK_FILE_MIB} MiB of disk files"
D=$G/disk.d
rm -rf "$D"
mkdir -p "$D/data"
"${PYTHON:-/usr/bin/python3}" "$here/gen-files.py" "$D/data" --count "$DISK_FILES" \
    --mib "$DISK_FILE_MIB"
(cd "$D/data" && "$G/bin/pagecache" -w "$D/MANIFEST" f* >/dev/null)
info "guest: mkfs.ext4 -d ($DISK_MIB MiB)"
rm -f "$G/disk.img.tmp"
# 4 KiB blocks (mke2fs.conf gives a disk this small 1 KiB ones), so that
# page cache pages are copies of 4096-aligned disk blocks: what diskmap
# publishes for disk-backed-pages.
mkfs.ext4 -q -F -b 4096 -L migdisk -d "$D" "$G/disk.img.tmp" "${DISK_MIB}M" >/dev/null
mv "$G/disk.img.tmp" "$G/disk.img"
DISK_DATA_MIB=$((DISK_FILES * DISK_FILE_MIB))
rm -rf "$D/data"

cat >"$G/guest.env" <<ENV
HASH=$HASH
KPKG=$KPKG
KVER=$KVER
KERNEL=$VMLINUZ
INITRD=$G/initrd.img
DISK=$G/disk.img
DISK_DATA_MIB=$DISK_DATA_MIB
BUSYBOX=$(busybox | head -n1 | awk '{print $2}')
ENV
info "guest: ready ($KPKG, initrd $(du -h "$G/initrd.img" | cut -f1), disk ${DISK_MIB} MiB)"
