#!/usr/bin/env bash
# Install Debian's QuickFIX example engines (executor, ordermatch, tradeclient) and unpack them.
#
#   scripts/quickfix.sh [DEST]
#
# Installs libquickfix17 and libquickfix-doc with apt-get when they are missing (root, or sudo),
# then gunzips the prebuilt example binaries into DEST (default: .quickfix) and prints DEST.
# The FIX tests (tests/integration/test_fix_quickfix.py) run it to find or install the engines.
set -euo pipefail

DEST="${1:-.quickfix}"
EXAMPLES=/usr/share/doc/libquickfix-doc/examples

have_engines() {
  [[ -f "$EXAMPLES/executor/C++/.libs/executor.gz" ]] && ldconfig -p 2>/dev/null | grep -q libquickfix.so.17
}

if ! have_engines; then
  command -v apt-get >/dev/null || { echo "quickfix.sh: apt-get not found" >&2; exit 2; }
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "quickfix.sh: not root and no sudo" >&2; exit 2; }
    SUDO="sudo -n"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq libquickfix17 libquickfix-doc >&2
fi

mkdir -p "$DEST"
for name in executor/C++/.libs/executor ordermatch/.libs/ordermatch tradeclient/.libs/tradeclient; do
  out="$DEST/$(basename "$name")"
  if [[ ! -x "$out" ]]; then
    gunzip -c "$EXAMPLES/$name.gz" > "$out.tmp"
    chmod +x "$out.tmp"
    mv "$out.tmp" "$out"
  fi
done
echo "$DEST"
