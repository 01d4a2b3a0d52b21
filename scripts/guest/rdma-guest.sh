#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make check-rdma: the host has no RDMA, so run the RDMA migration tests
# inside a TCG guest that has Soft-RoCE (guest-notes.md).  The guest is
# Debian's kernel (build-guest.sh's) with rdma_rxe and its dependencies,
# and an initramfs holding the patched qemu-system-x86_64 and
# migration-test with their shared libraries, the rxe userspace
# provider, iproute2's ip and rdma, bash, GNU sed and QEMU's
# rdma-migration-helper.sh.  /init (init-rdma) brings up an rxe link on
# a dummy interface and runs the migration-test paths given as
# arguments; their TAP output comes back on the serial console and is
# printed here, so that check.py can count it.
#
#   rdma-guest.sh [PATH...]    (default: upstream's rdma/plain tests and
#                               the rdma-pin-budget tests)
#
# Exit status: that of the guest run (0 when the TAP block came back).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/../lib.sh"

G=$BUILD/guest
R=$BUILD/rdma-guest
TIMEOUT=${RDMA_GUEST_TIMEOUT:-900}
PATHS=("$@")
# each path on its own: -p of the parent suite did not run fault/:
# upstream's plain and plain/ipv6 tests, ours, our fault/ ones and the
# composition matrix's pairs (composition-tests.c)
[ ${#PATHS[@]} -gt 0 ] || PATHS=(/x86_64/migration/precopy/rdma/plain
                                 /x86_64/migration/rdma-pin-budget
                                 /x86_64/migration/rdma-pin-budget/fault
                                 /x86_64/migration/rdma-pin-budget/with)

# Soft-RoCE, in load order (guest-notes.md).
MODULES="dummy crc32_generic configfs ib_core ib_uverbs udp_tunnel
ip6_udp_tunnel rdma_rxe ib_cm iw_cm rdma_cm rdma_ucm"

QEMU=$BLD/qemu-system-x86_64
MIGTEST=$BLD/tests/qtest/migration-test
[ -x "$QEMU" ] && [ -x "$MIGTEST" ] ||
    die "rdma-guest: build QEMU and migration-test first (make build)"
for t in rdma ip bash sed ldd busybox gzip strip; do
    command -v "$t" >/dev/null || die "rdma-guest: '$t' is missing (make deps)"
done
PROVIDERS=/usr/lib/x86_64-linux-gnu/libibverbs
[ -f /etc/libibverbs.d/rxe.driver ] && ls "$PROVIDERS"/librxe-* >/dev/null 2>&1 ||
    die "rdma-guest: the rxe provider is missing (install ibverbs-providers)"

"$here/build-guest.sh"
# shellcheck disable=SC1091
. <(grep -E '^(KERNEL|KPKG|KVER)=' "$G/guest.env")
MODDIR=$G/kernel/$KPKG/lib/modules/$KVER

# --- initramfs ---------------------------------------------------------------
info "rdma-guest: building initramfs"
rm -rf "$R/root"
D=$R/root
mkdir -p "$D/bin" "$D/usr/bin" "$D/usr/sbin" "$D/lib/modules" "$D/q/scripts" \
    "$D/etc/libibverbs.d" "$D$PROVIDERS"
cp /bin/busybox "$D/bin/busybox"
cp "$here/init-rdma" "$D/init"
chmod 755 "$D/init"
: >"$D/lib/modules/load-order"
for m in $MODULES; do
    # no "| head": with pipefail, find's SIGPIPE would end the script
    ko=$(find "$MODDIR/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" \) \
         -print -quit)
    [ -n "$ko" ] || die "rdma-guest: module $m not in $KPKG"
    case "$ko" in
    *.xz) xz -dc "$ko" >"$D/lib/modules/$m.ko" ;;
    *) cp "$ko" "$D/lib/modules/$m.ko" ;;
    esac
    echo "$m" >>"$D/lib/modules/load-order"
done

strip --strip-debug -o "$D/q/qemu-system-x86_64" "$QEMU"
strip --strip-debug -o "$D/q/migration-test" "$MIGTEST"
# the fault injector, which migration-test looks for beside itself
cp "$BLD/tests/qtest/qtest-fault-inject.so" "$D/q/"
# migration-test runs the helper itself (popen): #!/bin/bash, executable
cp "$SRC/scripts/rdma-migration-helper.sh" "$D/q/scripts/"
chmod 755 "$D/q/scripts/rdma-migration-helper.sh"
ln -s /usr/bin/bash "$D/bin/bash"
printf '%s\n' "${PATHS[@]}" >"$D/q/paths"
# firmware, found by the binary through qemu-bundle next to it
fw=$D/q/qemu-bundle/usr/local/share/qemu
mkdir -p "$fw"
for f in "$BLD"/qemu-bundle/usr/local/share/qemu/*; do
    [ -e "$f" ] && [ ! -d "$f" ] && cp -L "$f" "$fw/"
done
cp "$(command -v bash)" "$D/usr/bin/bash"
cp "$(command -v sed)" "$D/usr/bin/sed"
cp "$(command -v rdma)" "$D/usr/bin/rdma"
cp "$(command -v ip)" "$D/usr/sbin/ip"
cp /etc/libibverbs.d/rxe.driver "$D/etc/libibverbs.d/"
cp "$PROVIDERS"/librxe-* "$D$PROVIDERS/"

# shared libraries of everything above, and libgcc_s (dlopen'ed by glibc)
libs() {
    ldd "$@" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'
}
# read all of ldconfig's output: an early exit would SIGPIPE it (pipefail)
gcc_s=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !f { print $NF; f = 1 }')
for lib in $(libs "$D/q/qemu-system-x86_64" "$D/q/migration-test" \
             "$D/q/qtest-fault-inject.so" \
             "$D/usr/bin/bash" "$D/usr/bin/sed" "$D/usr/bin/rdma" \
             "$D/usr/sbin/ip" "$D$PROVIDERS"/librxe-* | sort -u) $gcc_s; do
    mkdir -p "$D$(dirname "$lib")"
    cp -L "$lib" "$D$lib"
done
(cd "$D" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null |
    gzip -1 >"$R/initrd.img")
info "rdma-guest: initramfs $(du -h "$R/initrd.img" | cut -f1)"

# --- run -------------------------------------------------------------------
log=$R/console.log
info "rdma-guest: booting (TCG, -smp 2 -m 2048; up to ${TIMEOUT} s)"
rc=0
timeout "$TIMEOUT" "$QEMU" -accel tcg -machine q35 -cpu max -smp 2 -m 2048 \
    -kernel "$KERNEL" -initrd "$R/initrd.img" \
    -append "console=ttyS0 quiet loglevel=1 panic=-1" \
    -display none -serial "file:$log" -monitor none -no-reboot -nodefaults \
    || rc=$?
if ! grep -q '^@@TAP-END' "$log"; then
    tail -n 40 "$log" >&2
    die "rdma-guest: the guest did not finish its tests (qemu exit $rc); see $log"
fi
grep '^@@WARN' "$log" >&2 || true
sed -n '/^@@TAP-BEGIN/,/^@@TAP-END/p' "$log" | tr -d '\r' | grep -v '^@@TAP-'
