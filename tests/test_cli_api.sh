#!/bin/sh
# The command's train, infer, eval, demo and run are clients of the public header only (issue 11,
# as dav1d's tool is of dav1d.h): they and the CLI helpers they include name no internal header,
# no dfr_* function and no DFR_* macro, and each compiles with include/ and src/cli/ alone.
# Usage: test_cli_api.sh SOURCE_ROOT [CC]
root="$1"; cc="${2:-cc}"
cd "$root/src/cli" || { echo "FAIL: no $root/src/cli"; exit 1; }
commands="cmd_train.c cmd_infer.c cmd_eval.c cmd_demo.c cmd_run.c"
helpers="common.c backbone_opts.c train_opts.c outputs.c progress.c"
fail=0
# The headers they include, transitively (quoted includes are all in this folder).
files="$commands $helpers"
todo="$files"
while [ -n "$todo" ]; do
  next=""
  for f in $todo; do
    [ -f "$f" ] || continue
    for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
      [ "$h" = dfrcl.h ] && continue
      case " $files " in *" $h "*) continue ;; esac
      files="$files $h"; next="$next $h"
    done
  done
  todo="$next"
done
for f in $files; do
  [ -f "$f" ] || { echo "FAIL: $f includes a header outside src/cli: \"$f\""; fail=1; continue; }
  # Quoted includes: dfrcl.h and the CLI's own headers by bare name, nothing with a folder.
  bad=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*/' "$f")
  [ -n "$bad" ] && { echo "FAIL: $f includes an internal header:"; echo "$bad"; fail=1; }
  # No internal functions, types or macros (dfrcl_* and DFRCL_* are the public ones).
  bad=$(grep -nE '(^|[^A-Za-z0-9_])(dfr_[a-z0-9_]+|DFR_[A-Z0-9_]+)' "$f" | grep -v '^[0-9]*:[[:space:]]*/\?\*')
  [ -n "$bad" ] && { echo "FAIL: $f uses internals:"; echo "$bad"; fail=1; }
done
# Each compiles against the public header alone (an internal include cannot resolve).
if command -v "$cc" >/dev/null 2>&1; then
  for f in $commands $helpers; do
    "$cc" -std=c11 -D_GNU_SOURCE -fsyntax-only -I "$root/include" -I . -I /usr/include/cjson "$f" \
      2> /tmp/test_cli_api.$$ || { echo "FAIL: $f does not compile with include/ and src/cli/ alone:";
      head -5 /tmp/test_cli_api.$$; fail=1; }
  done
  rm -f /tmp/test_cli_api.$$
else
  echo "note: no $cc: the include check only (the build's dfrcl_cli_api library compiles them)"
fi
[ $fail -eq 0 ] && echo "ok: $(echo $files | wc -w) files of the command on dfrcl.h only"
exit $fail
