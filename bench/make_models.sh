#!/usr/bin/env bash
# Makes the benchmark's GGUF files (never committed; models/ is gitignored):
#   random-weight models with the exact shapes of Qwen2.5-0.5B and Llama-3.2-1B
#   (F16 from bench/gen_random_gguf.py, then llama-quantize), and
#   SmolLM2-135M-Instruct requantized from its shipped Q4_1 file.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/make_models.sh [--out DIR] [--models LIST] [--types LIST] [--threads N] [--list]

Writes, into DIR (default: models/bench in the repository, gitignored):
  qwen2.5-0.5b-shape.F16.gguf     random weights, Qwen2.5-0.5B shapes (qwen2)
  llama-3.2-1b-shape.F16.gguf     random weights, Llama-3.2-1B shapes (llama)
  <name>.{Q8_0,Q4_0,Q4_K_M}.gguf  quantized from the F16 by llama-quantize
  smollm2-135m-instruct.requant-q4_1.{Q8_0,Q4_0,Q4_K_M}.gguf
                                  llama-quantize --allow-requantize from the shipped
                                  models/SmolLM2-135M-Instruct.Q4_1.gguf
                                  (scripts/get_model.sh fetches it when missing)
Idempotent: existing files are kept. llama-quantize is built first when missing
(bench/build_llamacpp.sh).

  --out DIR       output directory
  --models LIST   comma-separated subset of: smollm2,qwen2.5-0.5b,llama-3.2-1b (default: all)
  --types LIST    comma-separated subset of: Q8_0,Q4_0,Q4_K_M (default: all)
  --threads N     llama-quantize threads (default 2)
  --list          print the paths the selection produces (existing or not) and exit
  -h, --help      this text
EOF
}

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${COREAI_BENCH_MODELS:-$root/models/bench}"
models="smollm2,qwen2.5-0.5b,llama-3.2-1b"
types="Q8_0,Q4_0,Q4_K_M"
threads=2
list_only=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --list) list_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
IFS=',' read -r -a model_list <<<"$models"
IFS=',' read -r -a type_list <<<"$types"
for t in "${type_list[@]}"; do
    case "$t" in Q8_0 | Q4_0 | Q4_K_M) ;; *) echo "unsupported type $t" >&2; exit 2 ;; esac
done

smol_src="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
base_of() {
    case "$1" in
    smollm2) echo "smollm2-135m-instruct.requant-q4_1" ;;
    qwen2.5-0.5b) echo "qwen2.5-0.5b-shape" ;;
    llama-3.2-1b) echo "llama-3.2-1b-shape" ;;
    *) echo "unknown model $1 (smollm2, qwen2.5-0.5b, llama-3.2-1b)" >&2; exit 2 ;;
    esac
}

if [ "$list_only" = 1 ]; then
    for m in "${model_list[@]}"; do
        for t in "${type_list[@]}"; do echo "$out/$(base_of "$m").$t.gguf"; done
    done
    exit 0
fi

mkdir -p "$out"
bindir="$("$here/build_llamacpp.sh" | tail -n 1)"
quantize="$bindir/llama-quantize"

quant() { # src dst type [extra flags]
    local src="$1" dst="$2" type="$3"
    shift 3
    if [ -s "$dst" ]; then
        echo "have $dst" >&2
        return
    fi
    echo "llama-quantize $* $(basename "$src") -> $(basename "$dst") ($type)" >&2
    "$quantize" "$@" "$src" "$dst.part" "$type" "$threads" >"$dst.log" 2>&1 || {
        tail -n 20 "$dst.log" >&2
        exit 1
    }
    mv "$dst.part" "$dst"
}

for m in "${model_list[@]}"; do
    base="$(base_of "$m")"
    if [ "$m" = smollm2 ]; then
        [ -s "$smol_src" ] || "$root/scripts/get_model.sh" >/dev/null
        for t in "${type_list[@]}"; do
            quant "$smol_src" "$out/$base.$t.gguf" "$t" --allow-requantize
        done
    else
        f16="$out/$base.F16.gguf"
        if [ ! -s "$f16" ]; then
            echo "generating $f16" >&2
            python3 "$here/gen_random_gguf.py" "$m" "$f16.part"
            mv "$f16.part" "$f16"
        fi
        for t in "${type_list[@]}"; do
            quant "$f16" "$out/$base.$t.gguf" "$t"
        done
    fi
    for t in "${type_list[@]}"; do echo "$out/$base.$t.gguf"; done
done
