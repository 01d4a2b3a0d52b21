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

# apply_series TREE SERIES PATCHDIR WHAT REGEN
# Apply the patches that the file SERIES names (one a line, '#' comments)
# from PATCHDIR to the git repository TREE with git am, on its tag "base".
# TREE/.git/mig-transport/applied has one line per commit applied so:
#   <sha256 of the patch file> <commit id> <patch name>
# and the longest prefix of SERIES whose patch files are unchanged is kept.
# Commits not recorded there (made by hand and not yet exported with the
# command REGEN) stop it, unless FORCE=1 drops them.  WHAT names the
# patches in messages.
apply_series() {
    local tree=$1 series_file=$2 dir=$3 what=$4 regen=$5
    local state=$tree/.git/mig-transport
    local series applied keep keep_commit last i sum commit name p
    gq() { git -C "$tree" -c user.name=prepare -c user.email=prepare@localhost \
               -c commit.gpgsign=false "$@"; }
    [ -z "$(gq status --porcelain --untracked-files=no)" ] ||
        die "$tree has uncommitted changes; commit them and run $regen (or discard them)"
    mapfile -t series < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$series_file")
    mapfile -t applied < "$state/applied"
    keep=0
    keep_commit=$(gq rev-parse base)
    for i in "${!series[@]}"; do
        [ "$i" -lt "${#applied[@]}" ] || break
        read -r sum commit name <<<"${applied[$i]}"
        p=$dir/${series[$i]}
        [ -f "$p" ] || die "$series_file names missing patch ${series[$i]}"
        [ "$name" = "${series[$i]}" ] && [ "$sum" = "$(sha256sum < "$p" | cut -c1-64)" ] || break
        keep=$((i + 1))
        keep_commit=$commit
    done
    last=$(tail -n1 "$state/applied" | cut -d' ' -f2)
    [ -n "$last" ] || last=$(gq rev-parse base)
    if [ "$(gq rev-parse HEAD)" != "$(gq rev-parse "$last")" ]; then
        [ "${FORCE:-0}" = 1 ] ||
            die "$tree has commits not exported to $dir; run $regen first (or FORCE=1 to drop them)"
        info "FORCE=1, dropping unexported commits in $tree"
        keep=0
        keep_commit=$(gq rev-parse base)
    fi
    if [ "$keep" -lt "${#series[@]}" ] || [ "$keep" -lt "${#applied[@]}" ] ||
       [ "$(gq rev-parse HEAD)" != "$(gq rev-parse "$keep_commit")" ]; then
        info "keeping $keep $what(es), applying $(( ${#series[@]} - keep ))"
        gq reset -q --hard "$keep_commit"
        head -n "$keep" "$state/applied" > "$state/applied.new"
        for ((i = keep; i < ${#series[@]}; i++)); do
            p=$dir/${series[$i]}
            [ -f "$p" ] || die "$series_file names missing patch ${series[$i]}"
            gq am -q --committer-date-is-author-date "$p" ||
                { gq am --abort || true; die "$what ${series[$i]} does not apply"; }
            echo "$(sha256sum < "$p" | cut -c1-64) $(gq rev-parse HEAD) ${series[$i]}" >> "$state/applied.new"
        done
        mv "$state/applied.new" "$state/applied"
    else
        info "${what}es up to date (${#series[@]})"
    fi
}
