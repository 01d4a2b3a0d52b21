#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Configure (once) and build the prepared tree incrementally with ninja.
#   build.sh          the patched tree: qemu-system-x86_64, migration-test,
#                     the migration unit tests
#   build.sh --base   the unpatched base: qemu-system-x86_64 only (interop)
#   build.sh --lone   build/lone-tree, one series replayed alone by
#                     scripts/series.py --build, in build/lone-build
# Firmware the source package strips comes from Debian's seabios, ipxe-qemu
# and qemu-system-data and is linked where the build tree looks for it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONFIGURE_FLAGS=(
    --python=/usr/bin/python3 --target-list=x86_64-softmmu --disable-docs
    --disable-download --disable-install-blobs --disable-rust --enable-rdma
    --enable-zstd --enable-kvm
)

src=$SRC bld=$BLD
targets=(qemu-system-x86_64 qemu-img tests/qtest/migration-test
         tests/unit/test-xbzrle tests/unit/test-vmstate)
if [ "${1:-}" = --base ]; then
    src=$BASE_SRC bld=$BASE_BLD
    targets=(qemu-system-x86_64)
elif [ "${1:-}" = --lone ]; then
    src=$BUILD/lone-tree bld=$BUILD/lone-build
fi
[ -d "$src" ] || die "build: $src missing; run scripts/prepare.sh"

# The fault injector that migration-test preloads into QEMU and the
# migration unit tests this project adds, once the tree has them: a
# series replayed patch by patch has neither at its first patches.
if [ "$src" != "$BASE_SRC" ]; then
    [ -e "$src/tests/qtest/migration/fault-inject.c" ] &&
        targets+=(tests/qtest/qtest-fault-inject.so)
    while read -r t; do
        [ -e "$src/tests/unit/$t.c" ] && targets+=("tests/unit/$t")
    done < <(cd "$TOP" && ls tests/unit/test-*.c 2>/dev/null |
             xargs -r -n1 basename | sed 's/\.c$//')
fi

logs=$BUILD/logs
mkdir -p "$logs"
log_id=$(basename "$src")
flags_id=$(printf '%s\n' "${CONFIGURE_FLAGS[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$bld/build.ninja" ] || [ "$(cat "$bld/.mig-configure-id" 2>/dev/null)" != "$flags_id" ]; then
    info "build: configure $src"
    rm -rf "$bld"
    mkdir -p "$bld"
    (cd "$bld" && "$src/configure" "${CONFIGURE_FLAGS[@]}") > "$logs/$log_id-configure.log" 2>&1 ||
        { tail -n 30 "$logs/$log_id-configure.log"; die "configure failed, see $logs/$log_id-configure.log"; }
    echo "$flags_id" > "$bld/.mig-configure-id"
fi

info "build: ninja -C $bld ${targets[*]}"
ninja -C "$bld" "${targets[@]}" > "$logs/$log_id-ninja.log" 2>&1 ||
    { grep -E -B2 -A12 'error|FAILED' "$logs/$log_id-ninja.log" | cut -c1-300 | head -n 80; die "build failed, see $logs/$log_id-ninja.log"; }
tail -n 1 "$logs/$log_id-ninja.log"

# Firmware: never replace what the build itself installed into the bundle.
fw=$bld/qemu-bundle/usr/local/share/qemu
mkdir -p "$fw"
for f in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom \
         /usr/share/qemu/{kvmvapic,linuxboot,linuxboot_dma,multiboot,multiboot_dma,pvh,sgabios}.bin \
         /usr/share/qemu/qboot.rom; do
    [ -e "$f" ] || die "build: firmware $f missing; run scripts/deps.sh"
    [ -e "$fw/$(basename "$f")" ] || ln -s "$f" "$fw/"
done
info "build: $bld/qemu-system-x86_64 ready"
