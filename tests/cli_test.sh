#!/usr/bin/env bash
# cli_test.sh: the measuring subcommands of `coreai` end to end on the
# default model: `bench` (llama-bench's JSON fields, -d depth records, bad
# options refused with exit 2) and `profile` (the per-op table with the
# sample row, per-tensor shares, JSON). Values are not judged (speed lives in
# bench/), only that the records are there and well formed. Takes a few
# seconds.
#
# Usage: B=build tests/cli_test.sh   (needs $B/coreai and the default model)
# Ends with "N passed, M failed" like the unit tests.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
tool=$B/coreai
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
pass=0
fail=0
check() { # check DESCRIPTION COMMAND...
    local what="$1"
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}
work=$(mktemp -d /tmp/cai_cli.XXXXXX)
trap 'rm -rf "$work"' EXIT

# bench: two records (pp and tg) at depth 32, llama-bench's field names
"$tool" bench "$model" -p 16 -n 4 -d 32 -t 1 -r 2 --ttft-prompt 8 -o json >"$work/b.json" 2>"$work/b.err"
check "bench exits 0" test $? -eq 0
check "bench: two records" test "$(grep -c '"n_depth": 32,' "$work/b.json")" -eq 2
check "bench: pp16 record" grep -q '"n_prompt": 16,' "$work/b.json"
check "bench: tg4 record" grep -q '"n_gen": 4,' "$work/b.json"
for field in n_threads avg_ts stddev_ts avg_ns samples_ts ttft_ms load_ms max_rss_kib; do
    check "bench: field $field" test "$(grep -c "\"$field\":" "$work/b.json")" -eq 2
done
check "bench: positive rates" test -z "$(grep '"avg_ts": 0.000000' "$work/b.json")"
"$tool" bench "$model" -p 8 -n 2 -d 0,16 -t 1 -r 1 --ttft-prompt 0 >"$work/b.md" 2>&1
check "bench md: depth 16 rows" test "$(grep -c ' @ d16 ' "$work/b.md")" -eq 2
check "bench md: depth 0 rows" test "$(grep -cE '\| (pp8|tg2) \|' "$work/b.md")" -eq 2
"$tool" bench "$model" -d x >/dev/null 2>"$work/bad.err"
check "bench -d x exits 2" test $? -eq 2
check "bench -d x names the option" grep -q -- '-d' "$work/bad.err"

# profile: per-op rows with sample, per-tensor shares, valid-looking JSON
"$tool" profile "$model" -p 8 -n 4 -t 2 >"$work/p.txt" 2>&1
check "profile exits 0" test $? -eq 0
for op in attn_norm matmul_qkv rope_kv attention matmul_attn_out matmul_gate_up matmul_down \
    matmul_output sample; do
    check "profile: op $op" grep -qE "^  $op " "$work/p.txt"
done
for t in attn_q attn_k attn_v ffn_gate ffn_up; do
    check "profile: tensor $t" grep -qE "^  $t +matmul_" "$work/p.txt"
done
"$tool" profile "$model" -p 8 -n 2 -t 1 --greedy -o json >"$work/p.json" 2>&1
check "profile json exits 0" test $? -eq 0
check "profile json: two phases" test "$(grep -o '"phase": "[a-z]*"' "$work/p.json" | wc -l)" -eq 2
check "profile json: tensor shares" grep -q '"part_of": "matmul_gate_up"' "$work/p.json"
check "profile json: closes" test "$(tail -c 3 "$work/p.json" | tr -d '\n')" = "}]"
"$tool" profile --help >/dev/null
check "profile --help exits 0" test $? -eq 0

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
