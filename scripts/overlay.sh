#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The overlay: new files of this repository that live at their QEMU path.
#   overlay.sh list   print them, one path per line
#   overlay.sh link   symlink them into the prepared tree build/qemu
# Links are listed in the tree's .git/info/exclude, so "git status" there
# shows only edits to QEMU's own files (the glue).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROOTS=(migration include tests/unit tests/qtest docs)

list() {
    git -C "$TOP" ls-files -co --exclude-standard -- "${ROOTS[@]}" | sort -u |
        while read -r f; do [ -f "$TOP/$f" ] && echo "$f"; done
}

link() {
    local state=$SRC/.git/mig-transport f old
    [ -d "$SRC/.git" ] || die "overlay: $SRC is not prepared"
    mkdir -p "$state"
    touch "$state/overlay"
    list > "$state/overlay.new"
    # drop links whose file left the overlay
    while read -r old; do
        grep -qxF "$old" "$state/overlay.new" && continue
        [ -L "$SRC/$old" ] && rm -f "$SRC/$old"
    done < "$state/overlay"
    while read -r f; do
        if [ ! -L "$SRC/$f" ] && git -C "$SRC" ls-files --error-unmatch -- "$f" >/dev/null 2>&1; then
            die "overlay: $f is a QEMU file; change it through a glue patch instead"
        fi
        mkdir -p "$(dirname "$SRC/$f")"
        ln -sfn "$TOP/$f" "$SRC/$f"
    done < "$state/overlay.new"
    mv "$state/overlay.new" "$state/overlay"
    {
        echo "# overlay links (scripts/overlay.sh)"
        sed 's|^|/|' "$state/overlay"
    } > "$SRC/.git/info/exclude"
    info "overlay: $(wc -l < "$state/overlay") file(s) linked"
}

case "${1:-}" in
list) list ;;
link) link ;;
*) die "usage: overlay.sh list|link" ;;
esac
