#!/usr/bin/env bash
# The checks and benchmarks of the CUDA backend, on a machine with an NVIDIA GPU,
# from a folder made by scripts/gpu-bundle.sh (or a build folder laid out the
# same way: pass BUNDLE=build and it uses build/src, build/tests/gpu, build/bench).
# Run from the repository root (the PyTorch baseline is bench/train_pytorch.py).
#
# Usage: scripts/gpu-check.sh STAGE...   (BUNDLE=folder, LOG=folder for the logs)
#   info      nvidia-smi and the toolkit's versions
#   tests     test_gpu_ops (the fused and tensor-core attention kernels and the biases in cuBLASLt's
#             epilogue, then RMKV_CUDA_ATTENTION=products RMKV_CUDA_BIAS=kernel),
#             test_gpu_model (bf16 training's attention on the tensor cores, then RMKV_CUDA_ATTENTION=fp32:
#             the fp32 fused kernels, then RMKV_CUDA_GRAPHS=1: decoding steps and training passes as
#             CUDA graphs)
#   san       compute-sanitizer: memcheck on both programs, racecheck on test_gpu_ops
#   train     base config, 10 steps: rmkv fp32 / bf16 / recompute against PyTorch eager and torch.compile
#   stack     base bf16: sequences in parallel against sequences stacked into rows (B=4, 16 and 64);
#             B=16 again with attention in fp32 (RMKV_CUDA_ATTENTION=fp32) against the tensor cores, and
#             with the biases added by a kernel after each product (RMKV_CUDA_BIAS=kernel); B=4 and 16
#             with each training pass recorded as a CUDA graph (RMKV_CUDA_GRAPHS=1)
#   prof      base under PyTorch's profiler (bench/profile_gpu.py): device busy share, kernels a
#             step, time per kernel, for training (B=4 and B=16, then B=16 with RMKV_CUDA_GRAPHS=1),
#             one session decoding (then with RMKV_CUDA_GRAPHS=1) and 64 sessions stepped together
#             (traces in LOG)
#   infer     base inference, F32 and BF16 weights: prefill, decode, 64 sessions on their own
#             threads and stepped together; then 1, 8 and 64 stepped together; then both again
#             with decoding steps recorded as CUDA graphs (RMKV_CUDA_GRAPHS=1)
#   inferp    the same with attention through the cuBLAS products only
# Each stage's output goes to the terminal and to LOG/<stage>.log; a failing
# stage is reported and the next one runs. Exit status: the number of failed stages.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUNDLE:-build-gpu-bundle}
LOG=${LOG:-gpu-check-logs}
mkdir -p "$LOG"
if [ -d "$B/bin" ]; then
  BIN=$B/bin BENCH=$B/bin LIB=$B/lib
else
  BIN=$B/tests/gpu BENCH=$B/bench LIB=$B/src
fi
export LD_LIBRARY_PATH="$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RMKV_CUDA_PLUGIN="$LIB/librmkv_cuda.so"
export RMKV_TEST_TMP="${RMKV_TEST_TMP:-$(mktemp -d)}"
PY=${PYTHON:-python3}
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

stage() {
  case "$1" in
    info)
      nvidia-smi
      command -v nvcc >/dev/null && nvcc --version | tail -2
      "$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
      ;;
    tests)
      local rc=0
      "$BIN/test_gpu_ops" || rc=1
      RMKV_CUDA_ATTENTION=products RMKV_CUDA_BIAS=kernel "$BIN/test_gpu_ops" || rc=1
      "$BIN/test_gpu_model" || rc=1
      RMKV_CUDA_ATTENTION=fp32 "$BIN/test_gpu_model" || rc=1
      RMKV_CUDA_GRAPHS=1 "$BIN/test_gpu_model" || rc=1
      return $rc
      ;;
    san)
      RMKV_GPU_TEST_UNDER_SANITIZER=1 "$SAN" --tool memcheck --error-exitcode 1 "$BIN/test_gpu_ops" &&
        RMKV_GPU_TEST_UNDER_SANITIZER=1 "$SAN" --tool racecheck --error-exitcode 1 "$BIN/test_gpu_ops" &&
        "$SAN" --tool memcheck --error-exitcode 1 "$BIN/test_gpu_model"
      ;;
    train)
      "$BENCH/rmkv-bench-train" --device cuda --config base --steps 10 --peak-tflops 989 --python "$PY" \
        --rows fp32,bf16,recompute,torch-fp32,torch-bf16,torch-compile
      ;;
    stack)
      for ps in 4,1 1,4 2,2; do
        "$BENCH/rmkv-bench-train" --device cuda --config base --steps 10 --peak-tflops 989 --rows bf16 --no-pytorch \
          --batch 4 --parallel "${ps%,*}" --stack "${ps#*,}" || return 1
      done
      for ps in 8,1 4,4 2,8 1,16; do
        "$BENCH/rmkv-bench-train" --device cuda --config base --steps 10 --peak-tflops 989 --rows bf16 --no-pytorch \
          --batch 16 --parallel "${ps%,*}" --stack "${ps#*,}" || return 1
      done
      for ps in 4,4 1,16; do  # the fp32 fused attention kernels on the same bf16 steps
        RMKV_CUDA_ATTENTION=fp32 "$BENCH/rmkv-bench-train" --device cuda --config base --steps 10 --peak-tflops 989 \
          --rows bf16 --no-pytorch --batch 16 --parallel "${ps%,*}" --stack "${ps#*,}" || return 1
      done
      for ps in 4,4 1,16; do  # the biases added by a kernel after each product, on the same bf16 steps
        RMKV_CUDA_BIAS=kernel "$BENCH/rmkv-bench-train" --device cuda --config base --steps 10 --peak-tflops 989 \
          --rows bf16 --no-pytorch --batch 16 --parallel "${ps%,*}" --stack "${ps#*,}" || return 1
      done
      for bps in 4,4,1 4,1,4 16,4,4 16,1,16; do  # each training pass as one CUDA graph
        local b=${bps%%,*} ps=${bps#*,}
        RMKV_CUDA_GRAPHS=1 "$BENCH/rmkv-bench-train" --device cuda --config base --steps 10 --peak-tflops 989 \
          --rows bf16 --no-pytorch --batch "$b" --parallel "${ps%,*}" --stack "${ps#*,}" || return 1
      done
      for ps in 4,16 2,32; do  # larger batches: how MFU grows with the rows of each product
        "$BENCH/rmkv-bench-train" --device cuda --config base --steps 5 --peak-tflops 989 --rows bf16 --no-pytorch \
          --batch 64 --parallel "${ps%,*}" --stack "${ps#*,}" || return 1
      done
      ;;
    prof)
      RMKV_LIBRARY="$LIB/librmkv.so.0" "$PY" bench/profile_gpu.py --config base --batch 4 \
        --trace "$LOG/prof-b4.json.gz" &&
        RMKV_LIBRARY="$LIB/librmkv.so.0" "$PY" bench/profile_gpu.py --config base --batch 16 --parallel 4 --stack 4 \
          --trace "$LOG/prof-b16.json.gz" &&
        RMKV_CUDA_GRAPHS=1 RMKV_LIBRARY="$LIB/librmkv.so.0" "$PY" bench/profile_gpu.py --config base --batch 16 \
          --parallel 4 --stack 4 --trace "$LOG/prof-b16-graphs.json.gz" &&
        RMKV_LIBRARY="$LIB/librmkv.so.0" "$PY" bench/profile_gpu.py --config base --mode decode --steps 50 \
          --trace "$LOG/prof-decode.json.gz" &&
        RMKV_CUDA_GRAPHS=1 RMKV_LIBRARY="$LIB/librmkv.so.0" "$PY" bench/profile_gpu.py --config base --mode decode \
          --steps 50 --trace "$LOG/prof-decode-graphs.json.gz" &&
        RMKV_LIBRARY="$LIB/librmkv.so.0" "$PY" bench/profile_gpu.py --config base --mode together --sessions 64 \
          --steps 20 --trace "$LOG/prof-together.json.gz"
      ;;
    infer)
      for graphs in 0 1; do
        echo "--- RMKV_CUDA_GRAPHS=$graphs"
        RMKV_CUDA_GRAPHS=$graphs "$BENCH/rmkv-bench" --device cuda --configs base --far 2000 --sessions 64 \
          --weights f32,bf16 &&
          RMKV_CUDA_GRAPHS=$graphs "$BENCH/rmkv-bench" --device cuda --configs base --together 1,8,64 || return 1
      done
      ;;
    inferp)
      RMKV_CUDA_ATTENTION=products "$BENCH/rmkv-bench" --device cuda --configs base --far 2000 --sessions 64 &&
        RMKV_CUDA_ATTENTION=products "$BENCH/rmkv-bench" --device cuda --configs base --together 1,8,64
      ;;
    *)
      echo "gpu-check: unknown stage '$1' (info tests san train stack prof infer inferp)" >&2
      return 2
      ;;
  esac
}

failed=0
for s in "$@"; do
  echo "=== $s ($(date -u +%H:%M:%S))"
  stage "$s" 2>&1 | tee "$LOG/$s.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 77 ]; then
    echo "=== $s did not run: no usable CUDA device (exit 77)"
    failed=$((failed + 1))
  elif [ "$rc" -ne 0 ]; then
    echo "=== $s FAILED (exit $rc)"
    failed=$((failed + 1))
  fi
done
exit "$failed"
