"""The model families sdls runs and how each one decodes: ONE table, read by the checkpoint formats
(to build a ModelConfig), by `sdls models` and by the README's model table.

A family is a published line of checkpoints that share an architecture and a decoding recipe. The
facts come from each family's own config files and reference generation code (the `source` line);
where they could not be checked against a primary source, `unconfirmed` says what.

Fields:
- attention: "block_causal" (causal across blocks, bidirectional inside one; the KV cache and the
  context reuse while typing are exact) or "bidirectional" (every token sees every other).
- block_size, block_align: the attention block and where blocks start (config.BLOCK_ALIGNMENTS).
  For bidirectional models the block is only the window whose masks may be committed.
- sub_block_size: masks of a block are committed sub-block by sub-block (Fast-dLLM v2).
- threshold: the confidence threshold of the family's reference decoder (a job may set its own).
- logit_shift: row i - 1 predicts token i (trained with the causal LM loss) instead of row i.
- fim: (prefix, suffix, middle) token texts the family was trained to fill in the middle with,
  suffix first (SPM); None: a block-causal family then completes from the prefix alone.
- mask_tokens: token texts to look the mask up by, when config.json has no mask_token_id.
- stop_tokens: token texts that also end a completion (looked up; absent ones are skipped). The
  middle is always padded with the end-of-text token after the first stop.

A new family is one `Family(...)` entry here plus, if its weights are stored differently, a
format in checkpoint_formats.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    backbone: str  # the transformers class family it is parity-tested against
    attention: str
    block_size: int
    block_align: str = "context"
    sub_block_size: int | None = None
    threshold: float = 0.9
    logit_shift: bool = False
    fim: tuple[str, str, str] | None = None
    mask_tokens: tuple[str, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    detected_by: str = ""  # the config.json fields that identify it
    source: str = ""
    unconfirmed: str = ""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "sdls",
            "sdls (this repository)",
            backbone="Qwen2",
            attention="block_causal",
            block_size=32,
            block_align="context",
            fim=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
            detected_by='model_type "sdls"',
            source="model/sdls_model/layout.py",
        ),
        Family(
            "dream",
            "Dream / Dream-Coder / DiffuCoder",
            backbone="Qwen2",
            attention="bidirectional",
            block_size=32,
            logit_shift=True,
            mask_tokens=("<|mask|>", "<M>", "[MASK]", "<mask>"),
            detected_by='model_type "Dream" or architectures DreamModel; a GGUF file with general.architecture "dream"',
            source="Dream's generation_utils (logits shifted by one)",
        ),
        Family(
            "open-dcoder",
            "Open-dCoder",
            backbone="Qwen2",
            attention="bidirectional",
            block_size=32,
            logit_shift=True,
            mask_tokens=("<|mask|>", "<M>", "[MASK]", "<mask>"),
            detected_by='model_type "qwen2" or architectures Qwen2ForCausalLM',
            source="Open-dLLM diffusion_generate (is_causal=False, logits shifted)",
            unconfirmed="the mask token of the published tokenizer",
        ),
        Family(
            "llada",
            "LLaDA",
            backbone="Llama",
            attention="bidirectional",
            block_size=32,
            stop_tokens=("<|eot_id|>",),
            detected_by='model_type "llada" or architectures LLaDAModelLM; a GGUF file with general.architecture'
            ' "llada"',
            source="LLaDA generate.py (mask 126336, no shift)",
        ),
        Family(
            "causal",
            "Autoregressive Llama (GGUF, e.g. SmolLM2)",
            backbone="Llama",
            attention="block_causal",
            block_size=1,
            logit_shift=True,
            stop_tokens=("<|endoftext|>", "<|im_end|>"),
            detected_by='a GGUF file with general.architecture "llama"',
            source="llama.cpp convert_hf_to_gguf.py (LlamaModel: q/k rows permuted); a causal LM is block-causal"
            " with blocks of one token, row i-1 predicting token i",
        ),
        Family(
            "stable-diffcoder",
            "Stable-DiffCoder (ByteDance Seed)",
            backbone="Llama",
            attention="block_causal",
            block_size=4,
            block_align="sequence",
            threshold=0.95,
            fim=("<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>"),
            mask_tokens=("<[MASK_TOKEN]>",),
            detected_by='model_type "llama" with architectures StableDiffcoderForCausalLM or an auto_map into'
            " modeling_stable_diffcoder / modeling_seed_diffcoder (older revision)",
            source="Stable-DiffCoder report (block 4, no logit shift); modeling_stable_diffcoder generate_block"
            " (blocks from position 0, mask 5, threshold 0.95); Seed-Coder report (SPM fill-in-the-middle)",
            unconfirmed="the exact config.json; the FIM token texts in the released tokenizer.json; whether BOS is"
            " prepended (sdls follows tokenizer_config.json add_bos_token, default yes)",
        ),
        Family(
            "sdar",
            "SDAR (JetLM)",
            backbone="Qwen3",
            attention="block_causal",
            block_size=4,
            block_align="sequence",
            threshold=0.9,
            mask_tokens=("<|MASK|>", "<MASK>"),
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            detected_by='model_type "sdar" or architectures SDARForCausalLM (block size from config.json block_size)',
            source="JetAstra/SDAR generate.py block_diffusion_generate (blocks from position 0, row i -> token i),"
            " README (threshold 0.9), training/model/SDAR-*-Chat/config.json",
        ),
        Family(
            "a2d-mdlm",
            "Tiny-A2D, MDLM (dllm)",
            backbone="Qwen2 / Qwen3",
            attention="bidirectional",
            block_size=32,
            mask_tokens=("<|mask|>",),
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            detected_by='model_type "a2d-qwen2" / "a2d-qwen3" (the default objective)',
            source="ZHZisZZ/dllm pipelines/a2d (bidirectional 4D mask), core/samplers/mdlm.py (no shift)",
            unconfirmed="the mask id of the published tokenizer (dllm adds <|mask|> at load time)",
        ),
        Family(
            "a2d-bd3lm",
            "Tiny-A2D, BD3LM (dllm)",
            backbone="Qwen2 / Qwen3",
            attention="block_causal",
            block_size=32,
            block_align="generation",
            mask_tokens=("<|mask|>",),
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            detected_by='model_type "a2d-qwen2" / "a2d-qwen3" plus "sdls_objective": "bd3lm", which you add'
            " (the exported config.json does not record the objective)",
            source="ZHZisZZ/dllm core/samplers/bd3lm.py (prompt left-padded to whole blocks: blocks start at the"
            " generation), examples/a2d (block 32)",
            unconfirmed="the mask id of the published tokenizer",
        ),
        Family(
            "fast-dllm-v2",
            "Fast-dLLM v2 (NVlabs)",
            backbone="Qwen2",
            attention="block_causal",
            block_size=32,
            block_align="sequence",
            sub_block_size=8,
            threshold=0.9,
            logit_shift=True,
            mask_tokens=("|<MASK>|",),
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            detected_by='model_type "Fast_dLLM_Qwen" or architectures Fast_dLLM_QwenForCausalLM (block: bd_size)',
            source="Fast-dLLM v2 modeling.py generate (blocks from position 0, logits shifted, small_block_size 8),"
            " v2/run_chatbot.py (threshold 0.9)",
            unconfirmed="the exact config.json and the |<MASK>| token text (id 151665 in the reference code)",
        ),
    ]
}


def infill_strategy(attention: str, fim_ids: tuple[int, int, int] | None) -> str:
    """The ModelConfig.infill_layout a family gets: bidirectional models fill in place; block-causal ones
    use their fill-in-the-middle tokens when the tokenizer has them, else the prefix alone."""
    if attention == "bidirectional":
        return "in_place"
    return "fim" if fim_ids is not None else "prefix_only"


INFILL_DESCRIPTIONS = {
    "fim": "fill-in-the-middle tokens (suffix, then prefix)",
    "in_place": "in place (masks between prefix and suffix)",
    "prefix_only": "prefix only (no fill-in-the-middle tokens: the suffix is not seen)",
}


_WHERE = {"context": "after the context", "sequence": "from position 0", "generation": "from the cursor"}


def markdown_table() -> str:
    """The README's model table, made from FAMILIES (tests/test_families.py keeps the README equal to it)."""
    rows = [
        "| family | detected from | attention | infill | threshold | logits | ends on |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FAMILIES.values():
        if f.attention == "block_causal":
            attention = f"block-causal, blocks of {f.block_size} {_WHERE[f.block_align]}"
            attention += f", committed {f.sub_block_size} at a time" if f.sub_block_size else ""
            infill = "fill-in-the-middle tokens" if f.fim else "prefix only"
        else:
            attention, infill = f"bidirectional, commits in windows of {f.block_size}", "in place"
        ends = ", ".join(["eos", *(f"`{t}`".replace("|", "\\|") for t in f.stop_tokens)])
        logits = "shifted (row i-1)" if f.logit_shift else "row i"
        rows.append(f"| {f.title} | {f.detected_by} | {attention} | {infill} | {f.threshold} | {logits} | {ends} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
