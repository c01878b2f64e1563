#!/usr/bin/env bash
# The GPU run issue 8 owes: kernel tests on the GPU (bf16 included), then `sdls bench kernels --tune`.
# Works without installing sdls (the three package roots go on PYTHONPATH), so a bare GPU image with
# torch + triton is enough. Usage, from the repo root:  bash kernels/gpu_check.sh [python]   (< 10 min on one H100/H200)
# Logs go to $OUT (or ./gpu_check_out): tests.log and bench.md.
set -u
PY=${1:-python3}
ROOT=$(pwd)
DEST=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$DEST"
export PYTHONPATH=$ROOT:$ROOT/model:$ROOT/kernels${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels_*.py tests/test_fast_path.py \
    tests/test_bench_decode.py 2>&1 | tee "$DEST/tests.log"
tests=${PIPESTATUS[0]}
timeout 330 "$PY" -m sdls.cli bench kernels --tune 2>&1 | tee "$DEST/bench.md"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, bench exit $bench"
exit $(( tests != 0 || bench != 0 ))
