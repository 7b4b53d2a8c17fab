#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh runs into one folder, for a machine with an
# NVIDIA GPU and the CUDA toolkit but none of this project's build dependencies:
# the library and its CUDA plugin, the gpu test programs, the two benchmark
# programs, and the shared libraries they need that such a machine may lack
# (oneDNN, CMocka, utf8proc, OpenCL's loader, GNU OpenMP). The C and C++
# runtimes and CUDA's own libraries are left to that machine.
#
# Usage: scripts/gpu-bundle.sh [BUILD_DIR (default build)] [OUT_DIR (default build-gpu-bundle)]
# The build needs the CUDA plugin: configure with the toolkit present (RMKV_CUDA AUTO or ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-build-gpu-bundle}
programs="$BUILD/tests/gpu/test_gpu_ops $BUILD/tests/gpu/test_gpu_model $BUILD/bench/rmkv-bench $BUILD/bench/rmkv-bench-train"
for f in $BUILD/src/librmkv.so.0 $BUILD/src/librmkv_cuda.so $programs; do
  [ -e "$f" ] || { echo "gpu-bundle: $f is missing: build $BUILD with the CUDA toolkit present first" >&2; exit 1; }
done
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
cp -L "$BUILD/src/librmkv.so.0" "$BUILD/src/librmkv_cuda.so" "$OUT/lib/"
cp $programs "$OUT/bin/"
# Every library the programs and the plugin resolve here, but the ones any Linux
# with the CUDA toolkit has.
for f in $programs "$BUILD/src/librmkv.so.0" "$BUILD/src/librmkv_cuda.so"; do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
    libcuda*|libcublas*|libcudart*|libnvidia*|librmkv*) ;;
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
strip --strip-unneeded "$OUT"/lib/*.so* "$OUT"/bin/* 2>/dev/null || true
du -sh "$OUT"
ls "$OUT/lib"
