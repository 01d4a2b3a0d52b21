#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make bench: every scenario x every available configuration, several
# repetitions (default 3), on the real-guest harness.  Writes JSON, a
# Markdown table (medians, ratios against precopy measured in the same
# run) and PNG plots to build/bench/bench-*/ and to bench/results/.
# Builds the guest first if build/guest/ is not current.  Extra arguments
# go to scripts/bench/migbench.py bench (e.g. --reps 5 --scenarios mixed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

[ -x "$BLD/qemu-system-x86_64" ] || die "no patched QEMU at $BLD (run make build)"
"$here/guest/build-guest.sh"
exec nice -n 10 "${PYTHON:-/usr/bin/python3}" "$here/bench/migbench.py" bench \
    --publish "$TOP/bench/results" "$@"
