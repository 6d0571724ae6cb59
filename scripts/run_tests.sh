#!/usr/bin/env bash
# Runs each test binary given on the command line from the repository root,
# shows its output, and ends with the totals: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0; skip=0; broken=0
for t in "$@"; do
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 30
        echo "BROKEN $name (exit $rc, no summary line)"
        broken=$((broken + 1)); fail=$((fail + 1)); continue
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); echo "BROKEN $name exit $rc"; fi
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then printf '%s\n' "$out" | grep -vE '^ok ' | tail -n 60; fi
    printf '%-28s %s\n' "$name" "$line"
done
if [ "$skip" -gt 0 ]; then
    echo "$pass passed, $fail failed, $skip skipped"
else
    echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
