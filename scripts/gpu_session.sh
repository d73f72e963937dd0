#!/usr/bin/env bash
# The GPU checks of issue 27 in one device call, prepared here so that a lent GPU is spent on measuring.
#
#   bash scripts/gpu_session.sh prepare     here: the Python 3.12 packages the GPU image lacks (PyAV, pydantic,
#                                           ptflops, pytorch-msssim) unpacked and packed into .gpu/site.tar.xz
#                                           (about 27 MB; the working tree and it must stay under 64 MiB)
#   bash scripts/gpu_session.sh check       there (device tool: carry [".gpu"], timeout_s 590): unpacks them,
#                                           runs benchmarks/gpu_restore.py (at most 5 min), video_stages.py on a
#                                           1080p clip (the video pipeline's stages alone), a profile of the
#                                           forward at 1120x640 (gpu_forward.py) and the GPU tests;
#                                           the report and the logs land in $OUT (about 6 min on an H200, plus
#                                           about 45 s to start the machine)
#
# The GPU image holds python3 3.12 with CUDA PyTorch, numpy, pillow, pyyaml, safetensors, tqdm, opencv, matplotlib
# and pytest (../.library/device/KINDS.md); darkir runs from src/ on PYTHONPATH, uninstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=('av<19' pydantic pydantic-core annotated-types typing-inspection typing-extensions ptflops pytorch-msssim)

prepare() {
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    rm -rf .gpu && mkdir -p .gpu/wheels .gpu/site
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu/wheels "${PACKAGES[@]}" 2> >(grep -v "^WARNING: Location" >&2)
    for wheel in .gpu/wheels/*.whl; do python3 -m zipfile -e "$wheel" .gpu/site; done
    tar -C .gpu/site -cf - . | xz -9 -T2 > .gpu/site.tar.xz  # xz packs PyAV's FFmpeg a third smaller than its wheel
    rm -rf .gpu/wheels .gpu/site
    local tree packed
    tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
    packed=$(stat -c %s .gpu/site.tar.xz)
    echo "working tree $((tree / 1048576)) MiB + .gpu/site.tar.xz $((packed / 1048576)) MiB (the limit is 64 MiB)"
}

check() {
    : "${OUT:?run this through the device tool, where OUT is set}"
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="tar")' \
        .gpu/site.tar.xz /tmp/site  # Python's lzma, in case the image has no xz
    export PYTHONPATH="/tmp/site:$PWD/src:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt" || true
    local status=0
    timeout 300 python3 benchmarks/gpu_restore.py --out "$OUT/gpu_restore.json" 2>&1 | tee "$OUT/benchmark.log" \
        || status=1
    timeout 40 python3 benchmarks/video_stages.py --size 1920x1080 --frames 48 --device cuda \
        --out "$OUT/video_stages.json" 2>&1 | tee "$OUT/video_stages.txt" || status=1
    # the forward alone at a small size, where darkir's defaults were slower than the official path (0.93x)
    timeout 40 python3 benchmarks/gpu_forward.py --sizes 1120x640 --repeats 3 --profile 1120x640 \
        --out "$OUT/gpu_forward.json" 2>&1 | tee "$OUT/gpu_forward.txt" || status=1
    # the GPU tests first (the benchmark script's own compiles, about a minute), then the CPU-side ones
    timeout 200 python3 -m pytest -q -p no:cacheprovider --durations=8 tests/test_gpu.py tests/test_video.py \
        tests/test_overlap.py tests/test_compiling.py tests/test_cuda_convs.py -k "gpu or batch or overlap or convs or compil" \
        2>&1 | tee "$OUT/tests.log" || status=1
    return "$status"
}

case "${1:-}" in
    prepare) prepare ;;
    check) check ;;
    *) echo "usage: bash scripts/gpu_session.sh prepare | check" >&2; exit 2 ;;
esac
