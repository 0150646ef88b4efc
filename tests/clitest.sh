# Shared by the shell tests (sourced after they set $tmp, their scratch folder): counts in $n and
# $fails, and expect CODE PATTERN CMD...: runs CMD, checks its exit code and that its output
# matches PATTERN (extended regex, case-insensitive).
fails=0; n=0
expect() {
  code="$1"; pattern="$2"; shift 2; n=$((n+1))
  "$@" > "$tmp/out" 2>&1; rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qiE -- "$pattern" "$tmp/out"; then
    echo "FAIL: $* -> exit $rc (want $code), output:"; sed 's/^/    /' "$tmp/out" | head -20
    echo "    (wanted a line matching: $pattern)"; fails=$((fails+1))
  else echo "ok: $*"; fi
}
