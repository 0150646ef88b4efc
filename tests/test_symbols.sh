#!/bin/sh
# The shared library exports exactly the functions in tests/libdfrcl.symbols, which are exactly
# the DFRCL_API functions of include/dfrcl.h, all named dfrcl_*; its SONAME is
# libdfrcl.so.DFRCL_API_VERSION_MAJOR. An accidental export, a removal, or a declared function
# the library lacks fails here rather than in a user's program.
# Usage: test_symbols.sh LIBRARY HEADER SYMBOLS_LIST
lib="$1"; header="$2"; list="$3"
command -v nm >/dev/null 2>&1 || { echo "skip: no nm (binutils)"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0

nm -D --defined-only "$lib" > "$tmp/nm" || { echo "FAIL: nm -D $lib"; exit 1; }
# "ADDRESS TYPE NAME[@VERSION]"; the name is the last field.
awk 'NF >= 3 { sub(/@.*/, "", $NF); print $NF }' "$tmp/nm" | LC_ALL=C sort -u > "$tmp/exported"
grep -v '^#' "$list" | grep . | LC_ALL=C sort -u > "$tmp/listed"
grep 'DFRCL_API ' "$header" | grep -v '^#' | grep -o 'dfrcl_[a-z0-9_]*(' | tr -d '(' |
  LC_ALL=C sort -u > "$tmp/declared"

if ! cmp -s "$tmp/exported" "$tmp/listed"; then
  echo "FAIL: the exports of $lib differ from $list (update the list only for a deliberate API"
  echo "change, with the version bump it needs). '<' exported but not listed, '>' listed but missing:"
  diff "$tmp/exported" "$tmp/listed" | grep '^[<>]'
  fail=1
fi
if ! cmp -s "$tmp/declared" "$tmp/listed"; then
  echo "FAIL: the DFRCL_API functions of $header differ from $list ('<' declared, '>' listed):"
  diff "$tmp/declared" "$tmp/listed" | grep '^[<>]'
  fail=1
fi
if grep -v '^dfrcl_' "$tmp/exported"; then
  echo "FAIL: the symbols above are exported but not named dfrcl_*"
  fail=1
fi

major=$(sed -n 's/^#define DFRCL_API_VERSION_MAJOR \([0-9][0-9]*\).*/\1/p' "$header")
if command -v readelf >/dev/null 2>&1; then
  soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  if [ "$soname" != "libdfrcl.so.$major" ]; then
    echo "FAIL: SONAME '$soname', want libdfrcl.so.$major (DFRCL_API_VERSION_MAJOR)"
    fail=1
  fi
else
  echo "note: no readelf, SONAME not checked"
fi
[ "$fail" -eq 0 ] && echo "ok: $(wc -l < "$tmp/exported") exported functions, as listed and declared; SONAME libdfrcl.so.$major"
exit "$fail"
