# SPDX-License-Identifier: GPL-2.0-or-later
#
# Shared helpers for the project's shell scripts.  Sourced, not run.

info() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Top of the project checkout and the ignored build area.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
SRC=$BUILD/qemu          # prepared (patched) tree, a git repository
BLD=$SRC/build           # its build directory
BASE_SRC=$BUILD/qemu-base     # unpatched base tree
BASE_BLD=$BASE_SRC/build      # its build directory
export TOP BUILD SRC BLD BASE_SRC BASE_BLD
