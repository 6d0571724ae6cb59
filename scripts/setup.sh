#!/usr/bin/env bash
# Installs what building and testing coreai needs on Debian 12: a C
# toolchain, clang with the libFuzzer runtime, libpng and libjpeg (image
# inputs of the classic engine). Uses sudo when not run as root. Idempotent.
set -euo pipefail
pkgs=(build-essential clang libclang-rt-14-dev libpng-dev libjpeg-dev python3 python3-pip)
need=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
