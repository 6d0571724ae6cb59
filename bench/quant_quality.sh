#!/usr/bin/env bash
# Reproduces "Quantization quality (SmolLM2-135M)" in bench/RESULTS.md.
#
#   1. the source: the shipped Q4_1 SmolLM2-135M-Instruct dequantized to f16
#      (coreai-optimization --precision f16), as a GGUF;
#   2. llama.cpp's Q8_0, Q4_0 and Q4_K_M made from that same f16 GGUF by
#      llama-quantize (built from the llama-cpp-python sdist by
#      bench/build_llamacpp.sh);
#   3. ours: int8 and int4 round-to-nearest, int8 and int4 calibrated (AWQ +
#      GPTQ) on tests/golden/quant/calibration.txt, and mixed at the bits per
#      weight of llama.cpp's Q4_K_M (all formats, and without q4_1/q5_1);
#   4. `coreai eval` of each against the f16 source on the held-out text
#      tests/golden/quant/heldout.txt (chunks of 512, second halves scored).
#
# Prints a Markdown table and leaves the files and JSON lines in $OUT
# (default models/bench/quant). About 10-20 minutes on 2 cores.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/quant_quality.sh [--out DIR] [--threads N] [--skip-mixed]

  --out DIR      where models and results go (default models/bench/quant)
  --threads N    threads for quantizing and evaluating (default 2)
  --skip-mixed   leave out the mixed-precision run (the slowest)
Environment: B (build folder, default build).
EOF
}

out=models/bench/quant
threads=2
skip_mixed=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --skip-mixed) skip_mixed=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
B="${B:-build}"
make B="$B" -j2 "$B/libcoreai.a" "$B/coreai-optimization" "$B/coreai" >/dev/null
model="$(scripts/get_model.sh)"
bin="$(bench/build_llamacpp.sh | tail -n 1)"
mkdir -p "$out"
cal=tests/golden/quant/calibration.txt
held=tests/golden/quant/heldout.txt
q="$B/coreai-optimization"

# `coreai eval` once the CLI dispatches it; until then a driver of
# tools/eval_cmd.h built here.
if "$B/coreai" eval --help >/dev/null 2>&1; then
    eval_cmd=("$B/coreai" eval)
else
    printf '#include "eval_cmd.h"\nint main(int argc, char **argv);\nint main(int argc, char **argv) { return cmd_eval(argc, argv); }\n' \
        > "$out/eval_driver.c"
    # The library links libpng/libjpeg when the build found them.
    cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Itools "$out/eval_driver.c" -o "$out/coreai-eval" \
        "$B/libcoreai.a" -lm -lpthread -lpng -ljpeg 2>/dev/null ||
        cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Itools "$out/eval_driver.c" -o "$out/coreai-eval" \
            "$B/libcoreai.a" -lm -lpthread
    eval_cmd=("$out/coreai-eval")
fi

src="$out/smollm2-f16.gguf"
step() { echo "== $*" >&2; }

step "f16 source"
[ -s "$src" ] || "$q" quantize --model "$model" --precision f16 --output "$src" -q >&2

for t in Q8_0 Q4_0 Q4_K_M; do
    f="$out/llamacpp-$t.gguf"
    [ -s "$f" ] && continue
    step "llama-quantize $t"
    LD_LIBRARY_PATH="$bin" "$bin/llama-quantize" "$src" "$f" "$t" "$threads" > "$f.log" 2>&1
done

run_q() { # name, args...
    local name="$1"
    shift
    local f="$out/coreai-$name.gguf"
    [ -s "$f" ] && return 0
    step "coreai-optimization $name"
    /usr/bin/time -f "%e s" -o "$f.time" "$q" quantize --model "$src" --output "$f" -t "$threads" "$@" \
        > "$f.log" 2>&1
}
run_q int8-rtn --precision int8
run_q int8-cal --precision int8 --calibration "$cal"
run_q int4-rtn --precision int4
run_q int4-cal --precision int4 --calibration "$cal"
if [ "$skip_mixed" = 0 ]; then
    # Q4_K_M's bits per weight over the 2-D weights, from `coreai eval`'s JSON.
    qkm_bpw="$("${eval_cmd[@]}" "$out/llamacpp-Q4_K_M.gguf" --text "$held" --chunks 1 -c 64 -o json -t "$threads" |
        sed -n 's/.*"bpw": \([0-9.]*\).*/\1/p')"
    run_q mixed --precision mixed --target-bpw "$qkm_bpw" --calibration "$cal"
    # Without q4_1 / q5_1: the f16 source was dequantized from q4_1, so those
    # two formats can re-find its grid almost exactly (see RESULTS.md).
    run_q mixed-no-q41 --precision mixed --target-bpw "$qkm_bpw" --calibration "$cal" \
        --formats q4_0,q4_K,q5_0,q5_K,q6_K,q8_0
fi

results="$out/results.jsonl"
: > "$results"
names=(llamacpp-Q8_0 coreai-int8-rtn coreai-int8-cal llamacpp-Q4_0 coreai-int4-rtn coreai-int4-cal
    llamacpp-Q4_K_M)
[ "$skip_mixed" = 0 ] && names+=(coreai-mixed coreai-mixed-no-q41)
for n in "${names[@]}"; do
    step "eval $n"
    "${eval_cmd[@]}" "$out/$n.gguf" --text "$held" --kld-against "$src" -o json -t "$threads" |
        sed "s/^{/{\"name\": \"$n\", /" >> "$results"
done

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| model | bpw (2-D) | PPL | mean KLD | ± | p99 KLD | max KLD | top-1 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
print("| f16 source | 16.0000 | %.4f | 0 | | | | 100 %% |" % rows[0]["ref_ppl"])
for r in rows:
    print("| %s | %.4f | %.4f | %.6f | %.6f | %.5f | %.4f | %.2f %% |" % (
        r["name"], r["bpw"], r["ppl"], r["kld_mean"], r["kld_mean_se"], r["kld_p99"],
        r["kld_max"], 100 * r["top1"]))
n = rows[0]
print("\n%d scored tokens (%d chunks of %d) of %s" % (n["n_tokens"], n["n_chunks"], n["n_ctx"], n["text"]))
EOF
