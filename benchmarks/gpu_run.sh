#!/usr/bin/env bash
# The GPU measurements of benchmarks/README.md, as run on a lent machine with one GPU and no network.
#
#   bash benchmarks/gpu_run.sh STAGE [OUT_DIR]
#
# MNIST travels gzipped in .gpudata/ (that machine cannot download it) and is unpacked to /tmp/data.
# Stages: env (versions, GPU, a CUDA smoke test of the unit tests), bench (`gankit bench` on CUDA),
# ttq (time to quality on CUDA). Every log goes to OUT_DIR (default: ./gpu-out).
set -uo pipefail
stage=${1:?stage: env, bench, ttq or all}
out=${2:-${OUT:-./gpu-out}}
mkdir -p "$out" /tmp/data/MNIST/raw
for f in .gpudata/*.gz; do
    [ -e "/tmp/data/MNIST/raw/$(basename "$f" .gz)" ] || gunzip -c "$f" > "/tmp/data/MNIST/raw/$(basename "$f" .gz)"
done
export GANKIT_DATA=/tmp/data PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
py=${PYTHON:-python3}

run_env() {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    nproc
    $py -c "import torch, torchvision, torchmetrics, pandas; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'torchmetrics', torchmetrics.__version__, 'pandas', pandas.__version__); print(torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))"
    # The unit tests that train, checkpoint and benchmark, on the GPU where they pick a device themselves.
    timeout 300 $py -m pytest -q -x -p no:cacheprovider tests/test_train.py tests/test_bench.py tests/test_losses.py 2>&1 | tail -25
}

run_bench() {
    $py -m gankit.cli bench --device cuda --out "$out/bench_gpu.md" 2>&1 | tee "$out/bench_gpu.log"
}

run_ttq() {
    $py benchmarks/time_to_quality.py --device cuda --presets mlp-mnist dcgan-mnist --budget "${TTQ_BUDGET:-60}" \
        --every "${TTQ_EVERY:-5}" --csv "$out/ttq_gpu.csv" --out "$out/ttq_gpu.md" 2>&1 | tee "$out/ttq_gpu.log"
}

case $stage in
    env) run_env ;;
    bench) run_bench ;;
    ttq) run_ttq ;;
    all) run_env; run_bench; run_ttq ;;
    *) echo "unknown stage $stage: use env, bench, ttq or all" >&2; exit 2 ;;
esac
