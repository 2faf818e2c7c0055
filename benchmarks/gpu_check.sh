#!/usr/bin/env bash
# The course's GPU path in one go: decoding and training benchmarks on CUDA, the
# shakespeare-char quality run over several seeds, the attention-view benchmark,
# and the model/generation/training tests with a GPU present (device auto-selection
# then picks CUDA). Usage: GPTLAB_DATA_MIRROR=/path/to/mirror bash benchmarks/gpu_check.sh [OUTDIR]
set -u
out=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export GPTLAB_DATA_DIR=${GPTLAB_DATA_DIR:-/tmp/gptlab-data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
python3 benchmarks/bench_decoding.py --device cuda 2>&1 | tee "$out/decoding.txt"
python3 benchmarks/bench_training.py --device cuda --no-progress 2>&1 | tee "$out/training.txt"
for seed in 1 2 3; do
  python3 benchmarks/bench_training.py --device cuda --skip-speed --no-progress --seed $seed 2>&1 | grep -E "final val|quality" 
done | tee "$out/seeds.txt"
python3 benchmarks/bench_viz.py --device cuda 2>&1 | tee "$out/viz.txt"
python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_config_model.py tests/test_generation.py \
  tests/test_training.py tests/test_attention.py tests/test_pretrained.py 2>&1 | tail -25 | tee "$out/tests.txt"
