#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Prepare build/qemu: a git repository holding the unpacked base (one base
# commit, tagged "base"), the glue patches of qemu/series applied with
# "git am", and the overlay files linked in.  Also prepares build/qemu-base,
# a worktree of the untouched base for interop tests.
#
# Re-running is cheap: the base is unpacked once, glue commits that are
# already applied are kept (only the changed tail of qemu/series is
# re-applied), and nothing touches the build directories.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$TOP/qemu/base.conf"

"$TOP/scripts/fetch-base.sh"

DL=$BUILD/dl
STATE=$SRC/.git/mig-transport
base_id=$(cat "$DL"/*.dsc | sha256sum | cut -c1-16)

git_q() { git -C "$SRC" -c user.name=prepare -c user.email=prepare@localhost \
              -c commit.gpgsign=false "$@"; }

# --- 1. the base commit ------------------------------------------------------
if [ ! -d "$SRC/.git" ] || [ "$(cat "$STATE/base-id" 2>/dev/null)" != "$base_id" ]; then
    info "prepare: unpacking base $BASE_VERSION into $SRC"
    [ -d "$BASE_SRC" ] && rm -rf "$BASE_SRC"
    rm -rf "$SRC"
    dpkg-source -x "$DL/${BASE_FILES%% *}" "$SRC" >"$BUILD/dpkg-source.log" 2>&1 ||
        die "dpkg-source failed, see $BUILD/dpkg-source.log"
    rm -rf "$SRC/.pc"
    git -C "$SRC" init -q -b master
    # Glue commits made by hand in the tree carry the series identity.
    git -C "$SRC" config user.name "Migration Transport Developers"
    git -C "$SRC" config user.email "mig-transport@invalid"
    git_q add -A --force
    GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
        git_q commit -q -m "base: QEMU $BASE_UPSTREAM from Debian qemu $BASE_VERSION"
    git_q tag base
    mkdir -p "$STATE"
    echo "$base_id" > "$STATE/base-id"
    : > "$STATE/applied"
fi

# --- 2. glue patches -----------------------------------------------------------
# $STATE/applied has one line per glue commit applied by us:
#   <sha256 of the patch file> <commit id> <patch name>
# The longest prefix of qemu/series whose patch files are unchanged is kept.
[ -z "$(git_q status --porcelain --untracked-files=no)" ] ||
    die "prepare: $SRC has uncommitted changes to QEMU files; commit them and run scripts/regen-glue.sh (or discard them)"

mapfile -t series < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$TOP/qemu/series")
mapfile -t applied < "$STATE/applied"

keep=0
keep_commit=$(git_q rev-parse base)
for i in "${!series[@]}"; do
    [ "$i" -lt "${#applied[@]}" ] || break
    read -r sum commit name <<<"${applied[$i]}"
    p=$TOP/qemu/patches/${series[$i]}
    [ -f "$p" ] || die "qemu/series names missing patch ${series[$i]}"
    [ "$name" = "${series[$i]}" ] && [ "$sum" = "$(sha256sum < "$p" | cut -c1-64)" ] || break
    keep=$((i + 1))
    keep_commit=$commit
done

last_commit=$(tail -n1 "$STATE/applied" | cut -d' ' -f2)
[ -n "$last_commit" ] || last_commit=$(git_q rev-parse base)
if [ "$(git_q rev-parse HEAD)" != "$(git_q rev-parse "$last_commit")" ]; then
    [ "${FORCE:-0}" = 1 ] ||
        die "prepare: $SRC has glue commits not exported to qemu/patches; run scripts/regen-glue.sh first (or FORCE=1 to drop them)"
    info "prepare: FORCE=1, dropping unexported commits in $SRC"
    keep=-1
fi

if [ "$keep" = -1 ]; then
    keep=0
    keep_commit=$(git_q rev-parse base)
    git_q reset -q --hard base
fi
if [ "$keep" -lt "${#series[@]}" ] || [ "$keep" -lt "${#applied[@]}" ] ||
   [ "$(git_q rev-parse HEAD)" != "$(git_q rev-parse "$keep_commit")" ]; then
    info "prepare: keeping $keep glue commit(s), applying $(( ${#series[@]} - keep ))"
    git_q reset -q --hard "$keep_commit"
    head -n "$keep" "$STATE/applied" > "$STATE/applied.new"
    for ((i = keep; i < ${#series[@]}; i++)); do
        p=$TOP/qemu/patches/${series[$i]}
        [ -f "$p" ] || die "qemu/series names missing patch ${series[$i]}"
        git_q am -q --committer-date-is-author-date "$p" ||
            { git_q am --abort || true; die "prepare: glue patch ${series[$i]} does not apply"; }
        echo "$(sha256sum < "$p" | cut -c1-64) $(git_q rev-parse HEAD) ${series[$i]}" >> "$STATE/applied.new"
    done
    mv "$STATE/applied.new" "$STATE/applied"
else
    info "prepare: glue up to date (${#series[@]} patch(es))"
fi

# --- 3. overlay links ------------------------------------------------------------
"$TOP/scripts/overlay.sh" link

# --- 4. the unpatched base worktree, for interop tests -----------------------
if [ ! -d "$BASE_SRC" ]; then
    info "prepare: base worktree at $BASE_SRC"
    git_q worktree prune
    git_q worktree add -q --detach "$BASE_SRC" base
fi
info "prepare: done ($SRC)"
