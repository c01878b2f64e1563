"""What both later stages share: the corpus, the model they continue from, the log and the output."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sdls_model.train.cli import Log


def load_corpus(args, preset, log: Log):
    """Training and validation texts, gathered like `sdls train` does (one process: see gather_texts)."""
    from sdls_model.train.corpus import Decontaminator, default_source_dirs, gather, humaneval_texts

    dirs = args.data or default_source_dirs()
    corpus_bytes = args.corpus_bytes if args.corpus_bytes is not None else preset.corpus_bytes
    t0 = time.perf_counter()
    # workers=1: a fork of a process whose torch already started OpenMP threads can deadlock.
    corpus = gather(dirs, args.val_permille, corpus_bytes, Decontaminator(humaneval_texts()), workers=1)
    if not corpus.train:
        raise ValueError(f"no usable .py files under {', '.join(map(str, dirs))}")
    log(
        f"corpus: {len(corpus.train)} training / {len(corpus.val)} validation files from "
        f"{', '.join(map(str, dirs))} in {time.perf_counter() - t0:.1f} s"
    )
    return corpus


def load_model(args, log: Log):
    """The checkpoint the stage continues from (--init-from, default: the shipped model), float32, eval."""
    import torch

    from sdls_model.checkpoint import default_model_dir, load_checkpoint

    source = Path(args.init_from) if args.init_from is not None else default_model_dir()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg, model, tok = load_checkpoint(source, device=device, dtype=torch.float32)
    if cfg.attention != "block_causal" or cfg.infill_layout != "fim" or cfg.logit_shift:
        raise ValueError(
            f"{source}: the later stages train sdls's own layout (block-causal, fim, no logit shift), not this checkpoint's"
        )
    log(f"model: {source} ({cfg.num_parameters() / 1e6:.2f}M parameters) on {device}")
    return source, cfg, model.eval(), tok


def write_outputs(out: Path, model, tok, card: str, summary: dict, log: Log) -> Path:
    from sdls_model.checkpoint import save_checkpoint

    model_dir = out / "model"
    save_checkpoint(model_dir, model.to("cpu"), tok, extra_files={"MODEL_CARD.md": card})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"wrote {model_dir} and {out / 'summary.json'}")
    return model_dir
