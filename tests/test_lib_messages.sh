#!/bin/sh
# Library messages name settings as the API names them, never the command's options: the command
# adds those (src/cli/main.c, cli_option_hint). Fails when a string literal in a library source
# (src/ minus src/cli/) holds a "--option"; the allow-list below gives each exception its reason.
# usage: test_lib_messages.sh SOURCE_ROOT
root="${1:?usage: $0 SOURCE_ROOT}"
cd "$root" || exit 1
# file:regex of the literal allowed, and why.
allowed='
src/eval/report.c:var\(--|^"--[a-z]+:|[{;]--[a-z]+:
src/ops/tunables.c:dfrcl tune --print-table
src/campaign/shard.c:sbatch --array
'
# report.c: CSS custom properties of the HTML report ("--fg:", "var(--fg)"), not options.
# tunables.c: the tuning variables (DFRCL_*_TUNE) are environment settings with no API field;
#   the message points at the separate tool that lists their legal values.
# shard.c: Slurm's own sbatch option, advice for a job array with a step; not a dfrcl option.
hits=$(find src -name '*.[ch]' ! -path 'src/cli/*' | sort | while read -r f; do
  grep -n -o '"\([^"\\]\|\\.\)*"' "$f" | grep -- '--[a-z]' | while IFS= read -r line; do
    lit=${line#*:}
    ok=0
    for a in $allowed; do
      af=${a%%:*}; ar=${a#*:}
      if [ "$af" = "$f" ] && printf '%s\n' "$lit" | grep -qE -- "$ar"; then ok=1; break; fi
    done
    [ $ok -eq 1 ] || printf '%s:%s\n' "$f" "$line"
  done
done)
if [ -n "$hits" ]; then
  echo "library string literals naming command-line options (name the API setting instead,"
  echo "e.g. \"the memory budget (memory_mib)\"; the command adds its option):"
  printf '%s\n' "$hits"
  exit 1
fi
echo "ok: no library message names a command-line option"
