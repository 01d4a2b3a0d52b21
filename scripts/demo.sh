#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make demo: migrate a real Linux guest (Debian's kernel, busybox, a shared
# ext4 disk, a page-cache + dirtying workload) between two patched QEMUs,
# with plain precopy and each available configuration, and print a table.
# Builds the guest first if build/guest/ is not current.  Extra arguments
# go to scripts/bench/migbench.py demo (e.g. --configs precopy,postcopy-ram).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

[ -x "$BLD/qemu-system-x86_64" ] || die "no patched QEMU at $BLD (run make build)"
"$here/guest/build-guest.sh"
exec nice -n 10 "${PYTHON:-/usr/bin/python3}" "$here/bench/migbench.py" demo "$@"
