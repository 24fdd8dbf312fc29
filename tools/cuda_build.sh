#!/usr/bin/env bash
# Builds tessera with CUDA (`--features cuda`) on a machine without a GPU or a CUDA install,
# from PyPI's CUDA 13.4 packages (nvcc, nvvm, crt, cccl, runtime, nvrtc, cuBLAS, cuRAND) in
# a venv of their own (.cuda-venv). The one library PyPI does not ship is the driver's
# libcuda.so: the build links against a stub generated here from cudarc's list of driver
# functions (as the CUDA toolkit's own lib/stubs/libcuda.so; the real driver replaces it at
# run time through its soname, libcuda.so.1). A binary built here runs on a machine with an
# NVIDIA driver for CUDA 13.4 or newer.
#   bash tools/cuda_build.sh [cargo build args...]     # default: -p tessera-cli
# Environment: CUDA_COMPUTE_CAP (default 90, the H100's), CUDA_TARGET_DIR (default
# target/cuda, so that the CPU build stays warm).
set -euo pipefail
cd "$(dirname "$0")/.."
V="$PWD/.cuda-venv"
[ -x "$V/bin/pip" ] || python3 -m venv "$V"
"$V/bin/pip" install -q --disable-pip-version-check \
  nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-crt==13.4.92 nvidia-cuda-cccl==13.3.5.0.6 \
  nvidia-cuda-runtime==13.4.92 nvidia-cuda-nvrtc==13.4.92 nvidia-cublas==13.4.3.11 nvidia-curand==10.4.5.25
CU="$("$V/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
LINK="$V/link"
mkdir -p "$LINK"
for lib in cudart cublas cublasLt curand nvrtc; do
  ln -sf "$(ls "$CU/lib/lib$lib.so."* | grep -E "lib$lib\.so\.[0-9]+$" | head -1)" "$LINK/lib$lib.so"
done
# The driver stub: every `cu*` function cudarc declares, returning CUDA_ERROR_STUB_LIBRARY (34).
cargo fetch --locked >/dev/null 2>&1
CUDARC_VERSION="$(grep -A1 '^name = "cudarc"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
CUDARC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$CUDARC_VERSION" | head -1)"
grep -oE "^pub unsafe fn cu[A-Za-z0-9_]+" "$CUDARC/src/driver/sys/mod.rs" | sed 's/pub unsafe fn //' | sort -u \
  | awk '{print "int " $1 "(void) { return 34; }"}' > "$LINK/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$LINK/cuda_stub.c"
export PATH="$CU/bin:$PATH" CUDA_PATH="$CU" CUDA_ROOT="$CU" CUDA_HOME="$CU"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDARC_CUDA_VERSION=13040
export LIBRARY_PATH="$LINK:$CU/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-$PWD/target/cuda}"
nvcc --version | tail -2
[ $# -gt 0 ] || set -- -p tessera-cli
cargo build --release --locked --features cuda "$@"
echo "built: $CARGO_TARGET_DIR/release (CUDA 13.4, compute capability $CUDA_COMPUTE_CAP)"
