#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12 packages, the npm
# packages of the tokenizer oracle), builds, and runs every test that needs no
# GPU (reader fuzzing included, label fuzz); then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, the threaded tests under
# ThreadSanitizer, and a consumer project against the installed library.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
# Tests run $JOBS at a time, each with OpenMP threads for every core: threads that
# spin while they wait (OpenMP's default) starve the other tests' threads: on 2
# cores, `OMP_WAIT_POLICY=active ctest -j2 -LE slow` can make a test take dozens
# of times as long as with passive threads, which sleep instead.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

PACKAGES="build-essential cmake pkg-config libdnnl-dev libcmocka-dev nlohmann-json3-dev libutf8proc-dev libedit-dev
          python3 python3-torch python3-numpy clang libclang-rt-14-dev
          python3-pytest python3-matplotlib python3-venv python3-setuptools valgrind"
missing=""
for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# Node.js and npm (the Hugging Face tokenizer oracle): Debian's, unless some node is there already.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
if [ -f tests/tokenizer/hf/package-lock.json ]; then
  echo "== npm ci (tests/tokenizer/hf)"
  (cd tests/tokenizer/hf && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ -f bindings/node/package-lock.json ]; then
  echo "== npm ci (bindings/node)"
  (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== build (Release) and test"
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$ROOT/build-ci/install" \
      -DRMKV_FUZZ_SECONDS="${RMKV_FUZZ_SECONDS:-30}" -DRMKV_READER_FUZZ_SECONDS="${RMKV_READER_FUZZ_SECONDS:-12}" >/dev/null
cmake --build build-ci -j"$JOBS"
ctest --test-dir build-ci --output-on-failure -j"$JOBS" -LE slow

echo "== install, and build a consumer project against the installed tree"
cmake --install build-ci >/dev/null
rm -rf build-ci/consumer
cmake -S examples/consumer -B build-ci/consumer -DCMAKE_PREFIX_PATH="$ROOT/build-ci/install" >/dev/null
cmake --build build-ci/consumer -j"$JOBS"
LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" build-ci/consumer/consumer

echo "== the game example against the installed tree, run twice: the second run remembers the first"
rm -rf build-ci/game build-ci/game-save
cmake -S examples/game -B build-ci/game -DCMAKE_PREFIX_PATH="$ROOT/build-ci/install" >/dev/null
cmake --build build-ci/game -j"$JOBS"
LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" build-ci/game/game build-ci/game-save > build-ci/game-run1.txt
LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" build-ci/game/game build-ci/game-save > build-ci/game-run2.txt
cat build-ci/game-run2.txt
for who in innkeeper guard witch; do
  saved=$(sed -n "s/^saved $who: \([0-9]*\) tokens.*/\1/p" build-ci/game-run1.txt)
  restored=$(sed -n "s/^restored $who: \([0-9]*\) tokens.*/\1/p" build-ci/game-run2.txt)
  grep -q "^new $who:" build-ci/game-run1.txt
  [ -n "$saved" ] && [ "$saved" -gt 0 ] && [ "$saved" = "$restored" ] ||
    { echo "game: $who saved $saved tokens in the first run, the second restored '$restored'"; exit 1; }
done

echo "== the C++ wrapper example (find_package, C++17) and a pkg-config build (C, and C++20), installed tree"
rm -rf build-ci/cpp build-ci/pkgconfig && mkdir -p build-ci/pkgconfig
cmake -S examples/cpp -B build-ci/cpp -DCMAKE_PREFIX_PATH="$ROOT/build-ci/install" >/dev/null
cmake --build build-ci/cpp -j"$JOBS"
(cd build-ci/cpp && LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" ./cpp_example)
PKG_CONFIG_PATH="$ROOT/build-ci/install/lib/pkgconfig" make -s -C examples/pkgconfig OUT="$ROOT/build-ci/pkgconfig"
(cd build-ci/pkgconfig && LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" ./consumer && LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" ./cpp_example)

echo "== bindings on the installed library: pip install into a venv holding the library; node by LD_LIBRARY_PATH"
rm -rf build-ci/venv
PY3=/usr/bin/python3; [ -x "$PY3" ] || PY3=python3
"$PY3" -m venv --system-site-packages build-ci/venv
build-ci/venv/bin/pip install -q --no-build-isolation --no-index bindings/python
cmake --install build-ci --prefix build-ci/venv >/dev/null
(cd build-ci && env -u RMKV_LIBRARY venv/bin/python -c "import rmkv; m = rmkv.Model.create({'vocab_size': 40, 'd_model': 16, 'n_heads': 2, 'segment_len': 4}); print('python:', rmkv.version(), rmkv.library_path(), m.session().step([1, 2, 3]).shape)")
(cd build-ci && env -u RMKV_LIBRARY LD_LIBRARY_PATH="$ROOT/build-ci/install/lib" node -e "const r = require('$ROOT/bindings/node'); const m = r.Model.create({vocab_size: 40, d_model: 16, n_heads: 2, segment_len: 4}); console.log('node:', r.version(), m.session().step([1, 2, 3]).length); m.close()")

echo "== unit tests under ASan + UBSan"
# -O1: the usual optimisation for sanitised runs (several times faster than -O0,
# every check kept); the CUDA plugin is checked by the Release build.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRMKV_SANITIZE="address;undefined" -DRMKV_BUILD_TOOLS=OFF \
      -DRMKV_CUDA=OFF -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build build-asan -j"$JOBS"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -L unit -j"$JOBS"

echo "== threaded tests under ThreadSanitizer (library and tests/reliability/test_concurrency only)"
# OMP_NUM_THREADS=1: libgomp (OpenMP, also used inside oneDNN) is not instrumented,
# so its barriers are invisible to TSan and its worker threads would give false
# reports; with one OpenMP thread per caller the 16 threads of the test are the
# only threads that touch shared data.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DRMKV_SANITIZE=thread -DRMKV_BUILD_TOOLS=OFF -DRMKV_CUDA=OFF \
      -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build build-tsan -j"$JOBS" --target test_concurrency
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1" ctest --test-dir build-tsan --output-on-failure -L threads
