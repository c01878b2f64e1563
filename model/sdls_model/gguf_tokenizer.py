"""A GGUF file's own tokenizer (tokenizer.ggml.* metadata) as an sdls Tokenizer.

llama.cpp stores a byte-level BPE vocabulary as `tokenizer.ggml.model` "gpt2": the tokens (GPT-2
byte-to-unicode text), their types, the merges ("left right") and a pre-tokenizer *name*
(`tokenizer.ggml.pre`) that llama.cpp maps to a list of split regexes in llama-vocab.cpp
(llm_tokenizer_bpe). The same regexes, applied one after the other, then byte-level BPE, rebuild
the tokenizer with the `tokenizers` package. Control tokens become special added tokens (never
produced from user text, see tokenizer.py); user-defined ones are matched in text, as llama.cpp does.
SentencePiece vocabularies ("llama") and pre-tokenizers not in PRE_TOKENIZERS are refused by name.
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from .tokenizer import Tokenizer

# llama.cpp's split regexes per pre-tokenizer type (llama-vocab.cpp, llm_tokenizer_bpe).
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_LLAMA3 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_SEED_CODER = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"
_DEFAULT = (r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]")

# tokenizer.ggml.pre -> (regexes, ignore_merges), from llama-vocab.cpp's name table.
PRE_TOKENIZERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "default": (_DEFAULT, False),
    **dict.fromkeys(("gpt-2", "mpt", "olmo", "jais"), ((_GPT2,), False)),
    **dict.fromkeys(("starcoder", "refact", "command-r", "smollm", "codeshell"), ((r"\p{N}", _GPT2), False)),
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3"), ((_LLAMA3,), True)),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "stablelm2"), ((_QWEN2,), False)),
    "seed-coder": ((_SEED_CODER,), False),
}
CONTROL, USER_DEFINED = 3, 4  # gguf TokenType


def tokenizer_from_metadata(raw: dict) -> Tokenizer:
    """Raises ValueError naming the metadata key that is missing or not supported."""
    model = raw.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(
            f"tokenizer.ggml.model {model!r} is not supported (sdls reads byte-level BPE vocabularies, 'gpt2')"
        )
    pre = raw.get("tokenizer.ggml.pre") or "default"
    if pre not in PRE_TOKENIZERS:
        raise ValueError(f"tokenizer.ggml.pre {pre!r} is not a pre-tokenizer sdls knows ({', '.join(PRE_TOKENIZERS)})")
    regexes, ignore_merges = PRE_TOKENIZERS[pre]
    tokens, merges = raw.get("tokenizer.ggml.tokens"), raw.get("tokenizer.ggml.merges")
    if not tokens or merges is None:
        raise ValueError("missing metadata 'tokenizer.ggml.tokens' or 'tokenizer.ggml.merges'")
    types = raw.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if len(types) != len(tokens):
        raise ValueError(f"tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")
    vocab = {text: i for i, text in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ValueError(f"tokenizer.ggml.tokens holds {len(tokens) - len(vocab)} duplicate tokens")
    pairs = []
    for merge in merges:
        left, sep, right = merge.partition(" ")
        if not sep:
            raise ValueError(f"tokenizer.ggml.merges entry {merge!r} is not 'left right'")
        pairs.append((left, right))
    try:
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=ignore_merges, fuse_unk=False))
    except Exception as exc:  # tokenizers raises a bare Exception for a merge of unknown tokens
        raise ValueError(f"tokenizer.ggml.merges does not fit the vocabulary: {exc}") from exc
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL]
    )
    hf.add_tokens([AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED])
    return Tokenizer(hf)
