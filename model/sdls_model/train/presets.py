"""Named training setups: a model shape plus the training knobs that suit the hardware.

"cpu-fast" is what the shipped default model was trained with on a shared 2-core machine: "cpu"
(6.8M parameters, long rows) stayed on the masked-LM plateau (no use of the context) for all of its
820 steps, while "cpu-fast" makes ~4 steps a second and starts using the context after ~2k steps.
"gpu" is the owed H100/H200 run (bf16, 27M parameters, rows of ~1k tokens, 32 rows per GPU, DDP-ready).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    model: dict  # ModelConfig fields (vocab_size is set by the tokenizer)
    train: dict  # TrainConfig fields
    vocab_size: int
    tokenizer_bytes: int  # text the tokenizer trains on
    corpus_bytes: int | None  # training text kept (None: all of it)
    export_dtype: str = "float32"  # dtype of the shipped shards
    eval_tasks: int = 100  # held-out and HumanEval infill tasks at the end
    notes: str = ""
    corpus_workers: int = 2


PRESETS: dict[str, Preset] = {
    # ~6.8M parameters: a 32-token block step costs a few ms on a laptop core, and an hour of one
    # CPU core (~5-10M tokens) moves such a model well past unigram statistics. One thread: on a
    # shared 2-core machine two OpenMP threads ran 2.5x slower than one (505 vs 1241 tokens/s).
    # An 8k vocabulary halves the embedding (most of the parameters at this size) and the softmax,
    # and leaves fewer rare tokens that ~10M training tokens would barely update.
    "cpu": Preset(
        model=dict(
            d_model=256,
            n_layers=6,
            n_heads=4,
            n_kv_heads=2,
            ffn_size=768,
            block_size=32,
            max_seq_len=4096,
            tie_embeddings=True,
        ),
        train=dict(
            batch_size=16,
            lr=2e-3,
            warmup_steps=60,
            context=512,
            span_blocks=3,
            continue_context=128,
            continue_blocks=6,
            eval_every=100,
            checkpoint_every=200,
            log_every=10,
            threads=1,
            dtype="float32",
            eval_batches=2,
            mix={"line": 0.4, "span": 0.2, "continue": 0.4},
        ),
        vocab_size=8192,
        tokenizer_bytes=24_000_000,
        corpus_bytes=60_000_000,
        export_dtype="float32",
        eval_tasks=100,
        corpus_workers=2,
        notes="2-core CPU, fp32, time-budgeted",
    ),
    # ~2.8M parameters and short rows: many more (smaller) steps per CPU minute, to leave the
    # masked-LM plateau (predicting without looking at the context) sooner than "cpu" does.
    "cpu-fast": Preset(
        model=dict(
            d_model=192,
            n_layers=3,
            n_heads=3,
            n_kv_heads=1,
            ffn_size=512,
            block_size=32,
            max_seq_len=4096,
            tie_embeddings=True,
        ),
        train=dict(
            batch_size=8,
            lr=2e-3,
            warmup_steps=30,
            context=160,
            span_blocks=2,
            continue_context=64,
            continue_blocks=2,
            eval_every=200,
            checkpoint_every=400,
            log_every=20,
            threads=1,
            dtype="float32",
            eval_batches=2,
            mix={"line": 0.3, "span": 0.2, "continue": 0.5},
        ),
        vocab_size=8192,
        tokenizer_bytes=24_000_000,
        corpus_bytes=60_000_000,
        export_dtype="float32",
        eval_tasks=100,
        corpus_workers=1,
        notes="2-core CPU, a smaller and faster variant of cpu",
    ),
    # ~27.5M parameters (8 x 512, GQA 8/2, SwiGLU 1152, 16k vocab, tied). Rows of ~1k tokens on
    # average (contexts drawn up to 1024, "continue" rows 384 + 2 x 10 blocks), 32 rows per GPU, bf16.
    # At the ~700k tokens/s an H200 gives a model of this size, 6 minutes see ~250M tokens; corpus,
    # tokenizer and evaluation take the rest of the 10 minutes.
    "gpu": Preset(
        model=dict(
            d_model=512,
            n_layers=8,
            n_heads=8,
            n_kv_heads=2,
            ffn_size=1152,
            block_size=32,
            max_seq_len=4096,
            tie_embeddings=True,
        ),
        train=dict(
            batch_size=32,
            lr=1.5e-3,
            warmup_steps=200,
            context=1024,
            span_blocks=4,
            continue_context=384,
            continue_blocks=10,
            eval_every=500,
            checkpoint_every=2000,
            log_every=50,
            dtype="bfloat16",
            eval_batches=4,
            workers=10,
            steps=20000,
            time_budget=360,
            mix={"line": 0.35, "span": 0.25, "continue": 0.4},
        ),
        vocab_size=16384,
        tokenizer_bytes=64_000_000,
        corpus_bytes=None,
        export_dtype="bfloat16",
        eval_tasks=200,
        corpus_workers=14,
        notes="one H100/H200 (or several under torchrun), bf16; 6 minutes of training, <10 min end to end",
    ),
    # Adapting a pretrained AR backbone (`--init-from-gguf`): the shape comes from the backbone, so
    # `model` is empty. SmolLM2-135M on the shared 2-core CPU trains at ~15-40 row tokens/s: short rows
    # (mostly single lines, what inline completion asks), small batches, bfloat16 autocast, one thread.
    "adapt-cpu": Preset(
        model={},
        train=dict(
            batch_size=4,
            lr=1e-3,
            warmup_steps=10,
            context=160,
            continue_context=96,
            eval_every=40,
            checkpoint_every=40,
            log_every=5,
            threads=1,
            dtype="bfloat16",
            eval_batches=1,
            steps=100000,
            mix={"line": 0.6, "span": 0.1, "continue": 0.3},
        ),
        vocab_size=0,
        tokenizer_bytes=0,
        corpus_bytes=20_000_000,
        export_dtype="float32",
        eval_tasks=100,
        corpus_workers=1,
        notes="adapting a pretrained backbone on a 2-core CPU (LoRA)",
    ),
    # The GPU stage: the same adaptation on one H100/H200, rows of up to 1k tokens, 32 rows, bf16.
    "adapt-gpu": Preset(
        model={},
        train=dict(
            batch_size=32,
            lr=5e-4,
            warmup_steps=50,
            context=1024,
            continue_context=384,
            eval_every=250,
            checkpoint_every=1000,
            log_every=25,
            dtype="bfloat16",
            eval_batches=4,
            workers=8,
            steps=20000,
            time_budget=360,
            mix={"line": 0.4, "span": 0.25, "continue": 0.35},
        ),
        vocab_size=0,
        tokenizer_bytes=0,
        corpus_bytes=None,
        export_dtype="float32",
        eval_tasks=100,
        corpus_workers=14,
        notes="adapting a pretrained backbone on one H100/H200 (LoRA, or --adapter full --lr 5e-5)",
    ),
    # Seconds, for tests and smoke runs of the whole command.
    "tiny": Preset(
        model=dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=128, block_size=8, max_seq_len=1024),
        train=dict(
            batch_size=4,
            lr=3e-3,
            warmup_steps=5,
            context=64,
            span_blocks=2,
            continue_context=32,
            continue_blocks=3,
            eval_every=10,
            checkpoint_every=20,
            log_every=5,
            eval_batches=1,
            steps=20,
        ),
        vocab_size=512,
        tokenizer_bytes=2_000_000,
        corpus_bytes=2_000_000,
        eval_tasks=4,
        corpus_workers=1,
        notes="smoke test",
    ),
}
