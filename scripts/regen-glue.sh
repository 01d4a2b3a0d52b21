#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Regenerate qemu/patches/ and qemu/series from the glue commits in the
# prepared tree (base..HEAD of build/qemu).  Edit glue like this:
#   cd build/qemu && $EDITOR migration/options.c
#   git commit -a (or --fixup + rebase -i base) && ../../scripts/regen-glue.sh
# Patch files are named after the commit subject, without a number, so a
# new commit does not rename the others; qemu/series keeps the order.
# Every new patch must then be named in one step of qemu/steps/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STATE=$SRC/.git/mig-transport
[ -d "$SRC/.git" ] || die "regen-glue: $SRC is not prepared"
[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no)" ] ||
    die "regen-glue: commit your changes in $SRC first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$SRC" format-patch -q -N --zero-commit --no-signature --no-stat \
    --full-index -o "$tmp" base..HEAD

{
    echo "# Glue patches, applied in this order with git am."
    echo "# Regenerate with scripts/regen-glue.sh after committing in build/qemu."
} > "$tmp/series"
: > "$tmp/applied"
mapfile -t commits < <(git -C "$SRC" rev-list --reverse base..HEAD)
i=0
for p in $(ls "$tmp"/[0-9][0-9][0-9][0-9]-*.patch 2>/dev/null); do
    name=$(basename "$p" | sed 's/^[0-9]\{4\}-//')
    [ ! -e "$tmp/$name" ] || die "regen-glue: two commits named $name"
    mv "$p" "$tmp/$name"
    echo "$name" >> "$tmp/series"
    echo "$(sha256sum < "$tmp/$name" | cut -c1-64) ${commits[$i]} $name" >> "$tmp/applied"
    i=$((i + 1))
done

mkdir -p "$TOP/qemu/patches"
rm -f "$TOP/qemu/patches"/*.patch
for p in "$tmp"/*.patch; do
    [ -e "$p" ] && cp "$p" "$TOP/qemu/patches/"
done
cp "$tmp/series" "$TOP/qemu/series"
cp "$tmp/applied" "$STATE/applied"
info "regen-glue: $i patch(es) in qemu/patches; check that qemu/steps names them"
