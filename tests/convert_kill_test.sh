#!/usr/bin/env bash
# convert_kill_test.sh: a conversion killed with SIGKILL at random points, or
# stopped by a file-size limit (ulimit -f), or by a full disk, never leaves a
# partial output file. Each trial's output must either be absent or be a
# complete file that passes `coreai-torch verify`; no temporary file may be
# left beside it. Takes a few seconds.
#
# Usage: B=build tests/convert_kill_test.sh   (needs $B/coreai-torch)
# Ends with "N passed, M failed" like the unit tests.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
tool=$B/coreai-torch
model=tests/golden/torch/llama
big=models/SmolLM2-135M-Instruct.Q4_1.gguf
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if [ ! -x "$tool" ]; then
    echo "no $tool (build it first: make B=$B)"
    echo "0 passed, 1 failed"
    exit 1
fi
work=$(mktemp -d /tmp/cai_kill.XXXXXX)
trap 'rm -rf "$work"' EXIT
out=$work/out.coreaimodel

# The job to interrupt: the SmolLM2 import when the model is here (hundreds
# of milliseconds), else the llama fixture converted to f16.
if [ -s "$big" ]; then
    job=("$tool" import-gguf "$big" "$out" --quiet)
else
    job=("$tool" convert --model "$model" --architecture decoder-only --dtype f16 --output "$out" --quiet)
fi

# One full run gives the time window to kill in.
t0=$(date +%s%N)
"${job[@]}" || bad "an uninterrupted conversion failed"
t1=$(date +%s%N)
window_us=$(( (t1 - t0) / 1000 ))
[ "$window_us" -lt 2000 ] && window_us=2000
"$tool" verify "$out" > /dev/null || bad "the uninterrupted output does not verify"
rm -f "$out"

check_no_partial() {
    local what=$1
    if [ -e "$out" ]; then
        if "$tool" verify "$out" > /dev/null 2>&1; then ok; else bad "$what: partial $out left"; fi
    else
        ok
    fi
    # The only possible leftover: a named link made in the instant between
    # linking the finished file and renaming it (its content is complete).
    for f in "$out".tmp-*; do
        [ -e "$f" ] || continue
        if "$tool" verify "$f" > /dev/null 2>&1; then rm -f "$f"; else bad "$what: partial $f left"; fi
    done
}

killed=0
for trial in $(seq 1 10); do
    rm -f "$out"
    delay_us=$(( (RANDOM * 32768 + RANDOM) % window_us ))
    "${job[@]}" &
    pid=$!
    sleep "$(printf '0.%06d' "$delay_us")"
    if kill -9 "$pid" 2> /dev/null; then killed=$((killed + 1)); fi
    wait "$pid" 2> /dev/null
    check_no_partial "SIGKILL trial $trial at ${delay_us}us"
done
echo "SIGKILL: 10 trials in a ${window_us}us window, $killed killed before finishing"

# A file-size limit: a clear error, exit status 1, no output.
rm -f "$out"
err=$( (ulimit -f 64; "${job[@]}") 2>&1 )
rc=$?
if [ $rc -eq 1 ] && [ ! -e "$out" ] && printf '%s' "$err" | grep -q "ulimit -f"; then
    ok
else
    bad "ulimit -f: rc $rc, output present: $([ -e "$out" ] && echo yes || echo no), message: $err"
fi
echo "ulimit -f: $err"

# A full disk, where a small tmpfs can be mounted (root); skipped elsewhere.
disk=$work/disk
mkdir -p "$disk"
if mount -t tmpfs -o size=256k tmpfs "$disk" 2> /dev/null; then
    full=$disk/out.coreaimodel
    if [ -s "$big" ]; then
        err=$("$tool" import-gguf "$big" "$full" --quiet 2>&1)
    else
        err=$("$tool" convert --model "$model" --dtype f32 --output "$full" --quiet 2>&1)
    fi
    rc=$?
    left=$(ls -A "$disk")
    umount "$disk"
    if [ $rc -eq 1 ] && [ -z "$left" ] && printf '%s' "$err" | grep -q "disk full"; then
        ok
    else
        bad "disk full: rc $rc, left: '$left', message: $err"
    fi
    echo "disk full: $err"
else
    echo "disk full: skipped (cannot mount a tmpfs here)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
