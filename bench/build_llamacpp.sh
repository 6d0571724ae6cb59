#!/usr/bin/env bash
# Builds llama.cpp's llama-bench, llama-quantize and llama-simple (plus our own
# bench/llama_ttft.c linked against its libllama) from the llama.cpp source
# vendored in the PyPI sdist of llama-cpp-python. Everything lives in a cache
# directory outside the repository; nothing foreign is committed.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/build_llamacpp.sh [--version V] [--jobs N] [--force] [--print-bindir]

Downloads the llama-cpp-python sdist (pip download --no-binary), unpacks it and
builds llama.cpp's CPU tools, Release, with native CPU flags (GGML_NATIVE=ON).
Idempotent: does nothing when the binaries already exist (use --force to rebuild).

  --version V     llama-cpp-python version (default: $LLAMA_CPP_PYTHON_VERSION or 0.3.36)
  --jobs N        parallel compile jobs (default: 2; the machine has 2 cores)
  --force         rebuild even when the binaries exist
  --print-bindir  print the directory holding the binaries and exit (no build)
  -h, --help      this text

Cache: ${COREAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coreai}/llamacpp/<version>/
Output: .../build/bin/{llama-bench,llama-quantize,llama-simple,llama-ttft}
The last line printed is the bin directory.
EOF
}

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
jobs=2
force=0
print_only=0
while [ $# -gt 0 ]; do
    case "$1" in
    --version) version="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --print-bindir) print_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "$0")" && pwd)"
cache="${COREAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coreai}/llamacpp/$version"
src="$cache/src"
build="$cache/build"
bin="$build/bin"

if [ "$print_only" = 1 ]; then
    echo "$bin"
    exit 0
fi

want=(llama-bench llama-quantize llama-simple)
all_built() {
    for t in "${want[@]}" llama-ttft; do [ -x "$bin/$t" ] || return 1; done
    # Rebuild our TTFT probe when its source changed.
    [ "$bin/llama-ttft" -nt "$here/llama_ttft.c" ] || return 1
}
if [ "$force" = 0 ] && all_built; then
    echo "llama.cpp tools already built" >&2
    echo "$bin"
    exit 0
fi

mkdir -p "$cache"

# 1. The sdist (pip's own client; no wheel, no dependencies).
tarball="$cache/llama_cpp_python-$version.tar.gz"
if [ ! -s "$tarball" ]; then
    tmp="$(mktemp -d "$cache/dl.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading llama-cpp-python==$version sdist" >&2
    python3 -m pip download --no-deps --no-binary :all: --no-build-isolation \
        -d "$tmp" "llama-cpp-python==$version" >&2 ||
        python3 -m pip download --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$version" >&2
    mv "$tmp"/llama_cpp_python-*.tar.gz "$tarball"
fi

# 2. Unpack (only vendor/llama.cpp is used).
if [ ! -f "$src/CMakeLists.txt" ]; then
    echo "unpacking $tarball" >&2
    rm -rf "$cache/unpack" && mkdir -p "$cache/unpack"
    tar xzf "$tarball" -C "$cache/unpack"
    rm -rf "$src"
    mv "$cache/unpack"/llama_cpp_python-*/vendor/llama.cpp "$src"
    rm -rf "$cache/unpack"
fi

# 3. Configure and build: CPU only, native ISA, Release, shared libs (the
# default standalone configuration), no network or server pieces.
if [ ! -f "$build/CMakeCache.txt" ]; then
    gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    cmake -S "$src" -B "$build" "${gen[@]}" \
        -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_OPENSSL=OFF \
        -DLLAMA_CURL=OFF >&2
fi
cmake --build "$build" --config Release -j "$jobs" --target "${want[@]}" >&2

# 4. Our TTFT probe (bench/llama_ttft.c, our code) against the built libllama.
lib_dirs=()
while IFS= read -r d; do lib_dirs+=("-L$d" "-Wl,-rpath,$d"); done < <(
    find "$build" -name 'libllama.so*' -o -name 'libggml*.so*' | xargs -n1 dirname | sort -u)
cc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$src/include" -I"$src/ggml/include" \
    "$here/llama_ttft.c" -o "$bin/llama-ttft" "${lib_dirs[@]}" -lllama -lggml -lggml-base -lm >&2

for t in "${want[@]}" llama-ttft; do
    [ -x "$bin/$t" ] || { echo "missing $bin/$t after build" >&2; exit 1; }
done
echo "$bin"
