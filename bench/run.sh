#!/usr/bin/env bash
# Runs coreai and llama.cpp alternately on the same GGUF files with the same
# thread counts, and appends a dated section to bench/RESULTS.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [options] [MODEL.gguf ...]

For each model file x thread count, runs in rotating order, ROUNDS times:
  coreai bench FILE -p P -n N -t T -r R -o json
  llama-bench -m FILE -p P -n N -t T -r R -lm none -o json     (= old -mmp 0)
  llama-bench -m FILE -p P -n N -t T -r R -lm mmap -o json     (= old -mmp 1)
then, ROUNDS times each, time to first token with a 128-token prompt, load
included, page cache warm (cat FILE > /dev/null first), under /usr/bin/time -v
for the peak RSS:
  coreai bench FILE -p 0 -n 0 --ttft-prompt 128 -t T -o json
  llama-ttft -m FILE -p 128 -t T -lm none|mmap    (bench/llama_ttft.c)
and machine_limits --json before and after. Medians over all repetitions of
all rounds; llama.cpp's figure is the better of its two load modes. The raw
JSON stays in $B/bench-runs/<timestamp>/.

Models: the given files, or --models NAMES (see bench/make_models.sh --help),
or by default every file bench/make_models.sh --list names that exists.

  -t, --threads LIST   thread counts (default "1,2")
  -r, --reps R         repetitions per engine invocation (default 5)
      --rounds K       alternating rounds (default 3)
  -p N / -n N          prompt and generation lengths (default 512 / 128)
  -d, --depth N        context filled before each pp/tg run, both engines
                       (coreai bench -d, llama-bench -d; default 0)
      --ttft-prompt N  TTFT prompt tokens (default 128; 0: no TTFT runs)
      --models NAMES   comma list: smollm2, qwen2.5-0.5b, llama-3.2-1b
      --types LIST     with --models: comma list of Q8_0, Q4_0, Q4_K_M (default all)
      --label TEXT     a line saying what this run is (e.g. "validation baseline")
      --note TEXT      an extra paragraph for the section (repeatable)
      --out FILE       results file (default bench/RESULTS.md); "-" prints only
      --no-llama       coreai only (no comparison)
  -h, --help           this text
Environment: B (coreai build dir, default build-bench), COREAI_CACHE.
EOF
}

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
B="${B:-build-bench}"
threads="1,2"
reps=5
rounds=3
n_prompt=512
n_gen=128
depth=0
ttft_prompt=128
models_sel=""
types_sel="Q8_0,Q4_0,Q4_K_M"
label=""
notes=()
out="$here/RESULTS.md"
with_llama=1
files=()
while [ $# -gt 0 ]; do
    case "$1" in
    -t | --threads) threads="$2"; shift 2 ;;
    -r | --reps) reps="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    -p) n_prompt="$2"; shift 2 ;;
    -n) n_gen="$2"; shift 2 ;;
    -d | --depth) depth="$2"; shift 2 ;;
    --ttft-prompt) ttft_prompt="$2"; shift 2 ;;
    --models) models_sel="$2"; shift 2 ;;
    --types) types_sel="$2"; shift 2 ;;
    --label) label="$2"; shift 2 ;;
    --note) notes+=("$2"); shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-llama) with_llama=0; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
    esac
done
IFS=',' read -r -a thread_list <<<"$threads"

log() { echo "[run.sh $(date +%H:%M:%S)] $*" >&2; }

# ---- tools ----------------------------------------------------------------
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

log "building coreai (make B=$B -j2)"
mkdir -p "$B"
make B="$B" -j2 >"$B/bench-make.log" 2>&1 || {
    tail -n 20 "$B/bench-make.log" >&2
    [ -f "$B/libcoreai.a" ] || exit 1
    log "make failed (someone's work in progress?); using the existing $B/libcoreai.a"
}
coreai="$B/coreai"
if ! "$coreai" bench --help >/dev/null 2>&1; then
    # tools/coreai.c does not dispatch "bench" yet: build a private copy
    # with tools/bench_cmd.h included (never written into tools/).
    log "coreai has no bench subcommand yet; building $B/bench/coreai-bench"
    mkdir -p "$B/bench"
    python3 - "$root/tools/coreai.c" "$B/bench/coreai_bench.c" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace('#include "coreai.h"\n', '#include "coreai.h"\n#include "bench_cmd.h"\n', 1)
i = s.index("int main(int argc, char **argv)")
j = s.index("    const char *cmd = argv[1];", i) + len("    const char *cmd = argv[1];")
s = s[:j] + '\n    if (!strcmp(cmd, "bench"))\n        return cmd_bench(argc - 1, argv + 1);' + s[j:]
open(sys.argv[2], "w").write(s)
PY
    extra=()  # the optional image libraries, probed as the Makefile does
    printf '#include <png.h>\nint main(void){return 0;}' | cc -x c - -o /dev/null -lpng 2>/dev/null &&
        extra+=(-lpng)
    printf '#include <stdio.h>\n#include <jpeglib.h>\nint main(void){return 0;}' |
        cc -x c - -o /dev/null -ljpeg 2>/dev/null && extra+=(-ljpeg)
    cc -std=c11 -D_GNU_SOURCE -O2 -g -pthread -Wall -Wextra -Iinclude -Isrc -Itools \
        "$B/bench/coreai_bench.c" -o "$B/bench/coreai-bench" "$B/libcoreai.a" -lm -lpthread \
        "${extra[@]+"${extra[@]}"}"
    coreai="$B/bench/coreai-bench"
    "$coreai" bench --help >/dev/null
fi
make -s -C bench B="$root/$B" >&2
limits="$B/bench/machine_limits"

bindir=""
if [ "$with_llama" = 1 ]; then
    bindir="$("$here/build_llamacpp.sh" | tail -n 1)"
fi

# ---- models ---------------------------------------------------------------
if [ ${#files[@]} -eq 0 ]; then
    sel=()
    [ -n "$models_sel" ] && sel=(--models "$models_sel" --types "$types_sel")
    if [ -n "$models_sel" ]; then
        "$here/make_models.sh" "${sel[@]}" >/dev/null
    fi
    while IFS= read -r f; do
        [ -s "$f" ] && files+=("$f")
    done < <("$here/make_models.sh" "${sel[@]}" --list)
fi
[ ${#files[@]} -gt 0 ] || { echo "no model files (run bench/make_models.sh)" >&2; exit 1; }
for f in "${files[@]}"; do [ -s "$f" ] || { echo "missing $f" >&2; exit 1; }; done

# ---- run ------------------------------------------------------------------
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
rundir="$root/$B/bench-runs/$stamp"
mkdir -p "$rundir"
manifest="$rundir/manifest.tsv"
printf 'engine\tmode\tkind\tmodel\tthreads\tround\tjson\ttime\tcmd\n' >"$manifest"
{
    echo "date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include tools 2>/dev/null || echo '+dirty')"
    echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
    echo "kernel=$(uname -r)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "coreai=$coreai"
    echo "llama_bindir=$bindir"
    echo "llama_version=$(basename "$(dirname "$(dirname "$bindir")")" 2>/dev/null)"
    echo "reps=$reps"
    echo "rounds=$rounds"
    echo "n_prompt=$n_prompt"
    echo "n_gen=$n_gen"
    echo "n_depth=$depth"
    echo "ttft_prompt=$ttft_prompt"
    echo "threads=$threads"
    echo "label=$label"
} >"$rundir/meta.txt"
if [ -n "$bindir" ]; then
    "$bindir/llama-bench" --version >"$rundir/llama_version.txt" 2>&1 || true
fi
for n in "${notes[@]+"${notes[@]}"}"; do printf '%s\n' "$n" >>"$rundir/notes.txt"; done

seq_no=0
# run ENGINE MODE KIND MODEL THREADS ROUND -- CMD...
run() {
    local engine="$1" mode="$2" kind="$3" model="$4" t="$5" round="$6"
    shift 7
    seq_no=$((seq_no + 1))
    local tag
    tag="$(printf '%03d' "$seq_no")_${engine}_${mode}_${kind}_$(basename "$model" .gguf)_t${t}_r${round}"
    log "$tag"
    if ! /usr/bin/time -v -o "$rundir/$tag.time" "$@" >"$rundir/$tag.json" 2>"$rundir/$tag.err"; then
        log "FAILED: $* (see $rundir/$tag.err)"
        tail -n 5 "$rundir/$tag.err" >&2
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$engine" "$mode" "$kind" "$model" "$t" "$round" \
        "$tag.json" "$tag.time" "$*" >>"$manifest"
}

"$limits" --json >"$rundir/limits_start.json"
log "machine limits (start): $(tr -d '\n' <"$rundir/limits_start.json" | head -c 400)"

for f in "${files[@]}"; do
    cat "$f" >/dev/null
    for t in "${thread_list[@]}"; do
        for ((round = 1; round <= rounds; round++)); do
            engines=(coreai)
            [ "$with_llama" = 1 ] && engines+=(llama-none llama-mmap)
            # rotate the order every round so no engine always runs first
            n=${#engines[@]}
            for ((k = 0; k < n; k++)); do
                e="${engines[$(((k + round - 1) % n))]}"
                case "$e" in
                coreai)
                    run coreai - bench "$f" "$t" "$round" -- \
                        "$coreai" bench "$f" -p "$n_prompt" -n "$n_gen" -d "$depth" -t "$t" \
                        -r "$reps" --ttft-prompt 0 -o json ;;
                llama-*)
                    run llama.cpp "${e#llama-}" bench "$f" "$t" "$round" -- \
                        "$bindir/llama-bench" -m "$f" -p "$n_prompt" -n "$n_gen" -d "$depth" \
                        -t "$t" -r "$reps" -lm "${e#llama-}" -o json ;;
                esac
            done
        done
        for ((round = 1; round <= rounds && ttft_prompt > 0; round++)); do
            cat "$f" >/dev/null
            run coreai - ttft "$f" "$t" "$round" -- \
                "$coreai" bench "$f" -p 0 -n 0 --ttft-prompt "$ttft_prompt" -t "$t" -o json
            if [ "$with_llama" = 1 ]; then
                for mode in none mmap; do
                    cat "$f" >/dev/null
                    run llama.cpp "$mode" ttft "$f" "$t" "$round" -- \
                        "$bindir/llama-ttft" -m "$f" -p "$ttft_prompt" -t "$t" -lm "$mode"
                done
            fi
        done
    done
done

"$limits" --json >"$rundir/limits_end.json"
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$rundir/meta.txt"
log "raw results in $rundir"

if [ "$out" = "-" ]; then
    python3 "$here/report.py" "$rundir"
else
    python3 "$here/report.py" "$rundir" >>"$out"
    log "appended a section to $out"
fi
