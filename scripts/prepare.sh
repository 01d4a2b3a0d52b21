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
apply_series "$SRC" "$TOP/qemu/series" "$TOP/qemu/patches" "glue patch" \
    scripts/regen-glue.sh

# --- 3. overlay links ------------------------------------------------------------
"$TOP/scripts/overlay.sh" link

# --- 4. the unpatched base worktree, for interop tests -----------------------
if [ ! -d "$BASE_SRC" ]; then
    info "prepare: base worktree at $BASE_SRC"
    git_q worktree prune
    git_q worktree add -q --detach "$BASE_SRC" base
fi
info "prepare: done ($SRC)"
