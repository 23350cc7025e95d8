#!/usr/bin/env bash
# The GPU measurements of benchmarks/README.md, as run on a lent machine with one GPU and no network.
#
#   bash benchmarks/gpu_run.sh STAGE [OUT_DIR]
#
# MNIST travels gzipped in .gpudata/ (that machine cannot download it) and is unpacked to /tmp/data.
# Stages: env (versions, GPU, a CUDA smoke test of the unit tests), bench (`gankit bench` on CUDA),
# ttq (time to quality on CUDA), compile (why the compile variant is slow),
# full (the presets' full sizes trained through `gankit train`). Every log goes to OUT_DIR (default: ./gpu-out).
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

run_compile() {
    # Why is the torch.compile variant slower? Recompilations and time per step, compiled vs eager.
    TORCH_LOGS=recompiles $py - <<'PY' 2>&1 | tail -40 | tee "$out/compile_gpu.log"
import time, torch
from gankit.bench import GankitLoop, speed_variants
from gankit.config import make_config
from gankit.data import load_dataset
dev = torch.device("cuda")
cfg = make_config("mlp-mnist", "full")
ds = load_dataset(cfg)
for name, wrap in [("eager", None), ("compile", speed_variants(dev, cfg)["torch.compile"])]:
    loop = GankitLoop(cfg, ds, dev, wrap)
    t = time.perf_counter(); loop.run(50); first = time.perf_counter() - t
    for _ in range(3):
        t = time.perf_counter(); n = loop.run(300); dt = time.perf_counter() - t
        print(f"{name}: first 50 cycles {first:.1f} s; then {n / dt:.0f} img/s ({dt / 300 * 1e3:.2f} ms per cycle)")
PY
}

run_full() {
    # The lesson presets' own (`full`) sizes trained on the GPU through the CLI, three at a time (the
    # small networks leave the GPU mostly idle); each run's final evaluations are printed at the end.
    # FULL_RUNS: "preset[:seed] ..." (default: the three MNIST presets of lessons 01-03, seed 0)
    for spec in ${FULL_RUNS:-mlp-mnist dcgan-mnist wgan-gp-mnist}; do
        p=${spec%%:*}; seed=${spec#*:}; [ "$seed" = "$spec" ] && seed=0
        timeout "${FULL_LIMIT:-420}" $py -m gankit.cli train "$p" --profile full --device cuda --quiet \
            --seed "$seed" --out "/tmp/runs/s$seed" > "$out/train_${p}_s$seed.log" 2>&1 &
    done
    wait
    $py - <<'PY' 2>&1 | tee "$out/full_gpu.txt"
import json, pathlib
for m in sorted(pathlib.Path("/tmp/runs").glob("*/*/*/metrics.json")):
    doc = json.loads(m.read_text())
    ev = doc["evaluations"]
    print(m.parent.parent.name, m.parent.parent.parent.name, doc["status"], f"{len(ev)} evaluations:")
    for e in ev:  # one compact line per evaluation
        extra = f" cond_acc {e['cond_accuracy']:.3f}" if "cond_accuracy" in e else ""
        print(f"   epoch {e['epoch']:3d} {e['seconds']:6.1f} s  FID {e['fid']:7.2f}  classes {int(e['classes_covered']):2d}"
              f"  KL {e['kl_uniform']:.3f}{extra}")
PY
    for d in /tmp/runs/*/*/*/; do
        p=$(basename "$(dirname "$d")"); s=$(basename "$(dirname "$(dirname "$d")")")
        last=$(ls "$d"samples/epoch_*.png 2>/dev/null | tail -1)
        [ -n "$last" ] && cp "$last" "$out/full_${p}_${s}_$(basename "$last")"
    done
}

case $stage in
    env) run_env ;;
    bench) run_bench ;;
    ttq) run_ttq ;;
    compile) run_compile ;;
    full) run_full ;;
    all) run_env; run_bench; run_ttq ;;
    *) echo "unknown stage $stage: use env, bench, ttq or all" >&2; exit 2 ;;
esac
