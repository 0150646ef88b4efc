#!/bin/sh
# The README's C example ("Use from C") compiles as written against the public header and the
# shared library, and behaves: usage exit 2, an error naming a missing model file, exit 1.
# Usage: test_readme_c.sh REPO_ROOT LIBDIR CC [EXTRA_CFLAGS]
root="$1"; libdir="$2"; cc="$3"; extra="$4"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
awk '/^## Use from C/{s=1} s&&/^```c$/{c=1;next} c&&/^```$/{exit} c{print}' "$root/README.md" > "$tmp/score.c"
[ -s "$tmp/score.c" ] || { echo "FAIL: no C example under '## Use from C' in README.md"; exit 1; }
"$cc" $extra -std=c11 -Wall -Wextra -Werror -I "$root/include" "$tmp/score.c" -L "$libdir" -ldfrcl \
  -Wl,-rpath,"$libdir" -o "$tmp/score" || { echo "FAIL: the README's C example does not compile"; exit 1; }
"$tmp/score"; rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: no arguments -> exit $rc, want 2"; exit 1; }
"$tmp/score" "$tmp/missing.safetensors" w.safetensors x.png > "$tmp/out" 2>&1; rc=$?
if grep -qi "no OpenCL" "$tmp/out"; then echo "skip: no OpenCL device"; exit 77; fi
if [ "$rc" -ne 1 ] || ! grep -q "error: .*missing.safetensors" "$tmp/out"; then
  echo "FAIL: a missing model -> exit $rc, output:"; cat "$tmp/out"; exit 1
fi
echo "ok: the README's C example compiles and reports a missing model file"
