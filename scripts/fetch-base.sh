#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch the pinned base source package into build/dl/ and verify it.
# Tries Debian's archive (apt-get source) first; falls back to the cached
# copy in ../shared/qemu-src/ only when the archive fails.  Prints which
# source was used.  A verified download is kept and not fetched again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$TOP/qemu/base.conf"

DL=$BUILD/dl
SHARED=${SHARED_QEMU_SRC:-$TOP/../shared/qemu-src}
mkdir -p "$DL"
cd "$DL"

verify() {
    printf '%s' "$BASE_SHA256" | sed '/^$/d' | sha256sum --quiet -c - 2>/dev/null
}

if [ -f .source ] && verify; then
    info "fetch: base already present and verified (from $(cat .source))"
    exit 0
fi
rm -f $BASE_FILES .source

used=
info "fetch: apt-get source --download-only $BASE_PKG=$BASE_VERSION"
if apt-get source --download-only "$BASE_PKG=$BASE_VERSION" >apt-source.log 2>&1 &&
   verify; then
    used="Debian archive (apt-get source $BASE_PKG=$BASE_VERSION)"
else
    info "fetch: archive failed or checksum mismatch (see $DL/apt-source.log)"
    rm -f $BASE_FILES
    [ -d "$SHARED" ] || die "no fallback copy at $SHARED"
    for f in $BASE_FILES; do
        cp "$SHARED/$f" .
    done
    verify || die "sha256 mismatch in fallback copy $SHARED"
    used="fallback copy $(cd "$SHARED" && pwd)"
fi
echo "$used" > .source
info "fetch: using $used; sha256 verified"
