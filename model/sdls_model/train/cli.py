"""`sdls train`: one command from Python files on disk to a shippable checkpoint.

Gathers the corpus (default: this Python's standard library and installed packages), trains the
tokenizer, trains both stages, evaluates, and writes OUT/model (config.json, safetensors shards,
tokenizer.json, MODEL_CARD.md) plus training state, curves and logs in OUT. Run it again with the
same arguments to resume. Several GPUs: `torchrun --nproc-per-node N -m sdls_model.train.cli ...`.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from .presets import PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumes if it holds a run)")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=None,
        help="folders to gather .py files from (default: this Python's stdlib and site-packages)",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="cpu-fast: the shipped default model (2.8M, short rows, 2-core CPU); cpu: 6.8M on the CPU "
        "(the default); gpu: 27M, bf16, H100/H200 (DDP-ready); tiny: a smoke test; adapt-cpu / adapt-gpu: "
        "the training knobs of --init-from-gguf (adapt-cpu is its default)",
    )
    parser.add_argument("--steps", type=int, help="planned optimizer steps (schedule length)")
    parser.add_argument("--time-budget", type=float, help="seconds of training; ends cleanly with a checkpoint")
    parser.add_argument("--batch-size", type=int, help="rows per step per process")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--vocab-size", type=int)
    parser.add_argument("--corpus-bytes", type=int, help="cap on training text (bytes of source)")
    parser.add_argument("--val-permille", type=int, default=10, help="validation share of files, per mille")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, help="DataLoader processes building batches")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        help="training matmul precision (bfloat16 autocasts; on CPUs with AVX512-BF16 it is ~1.4x faster)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    parser.add_argument("--eval-tasks", type=int, help="held-out and HumanEval infill tasks at the end (0: skip)")
    parser.add_argument("--heldout-tasks", type=int, help="held-out infill tasks (default: --eval-tasks)")
    parser.add_argument("--latency-requests", type=int, default=20, help="first request + next keystroke pairs timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL_DIR",
        help="warm start: take this checkpoint's tokenizer and weights (fresh optimizer and schedule)",
    )
    parser.add_argument("--owed", default="", help="a line for the model card saying what is still owed")
    adapt = parser.add_argument_group("adapting a pretrained autoregressive backbone")
    adapt.add_argument(
        "--init-from-gguf",
        type=Path,
        metavar="PATH",
        help="adapt this AR model (a GGUF file, dequantised, or a checkpoint directory) into a block-diffusion "
        "model: block-causal attention, logits shifted (row i predicts token i + 1), mask and fill-in-the-middle "
        "tokens added; then both stages on the corpus",
    )
    adapt.add_argument(
        "--adapter",
        choices=("lora", "full"),
        default="lora",
        help="lora (default): frozen backbone + low-rank adapters, written in the shipping form (only what "
        "changed; the base comes from its package); full: every weight trains, an ordinary checkpoint",
    )
    adapt.add_argument("--lora-rank", type=int, default=16)
    adapt.add_argument("--lora-alpha", type=float, help="LoRA scale numerator (default 2 x rank)")
    adapt.add_argument(
        "--lora-layers",
        type=int,
        help="adapt only the top N layers (the rest and the embedding frozen: the backward pass stops there)",
    )
    adapt.add_argument("--block-size", type=int, help="attention block of the adapted model (default 4)")
    adapt.add_argument(
        "--ar-baseline",
        action="store_true",
        help="no training: write and evaluate the unchanged backbone as a plain AR model through the engine "
        "(blocks of one token, prefix only): the speed and quality anchor",
    )
    parser.add_argument(
        "--eval-only",
        type=Path,
        metavar="MODEL_DIR",
        help="no training: evaluate MODEL_DIR on this corpus's held-out split and HumanEval (summary.json in --out)",
    )


class Log:
    def __init__(self, path: Path, main: bool):
        self.path, self.main = path, main

    def __call__(self, message: str) -> None:
        if not self.main:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..config import ModelConfig
    from ..tokenizer import Tokenizer, train_tokenizer
    from .corpus import Decontaminator, default_source_dirs, gather, humaneval_texts
    from .trainer import TrainConfig, Trainer

    if args.preset is None:
        args.preset = "adapt-cpu" if args.init_from_gguf else "cpu"
    preset = PRESETS[args.preset]
    if args.threads:  # evaluation-only runs and the export's evaluation too, not just the trainer
        torch.set_num_threads(args.threads)
    if args.init_from_gguf and args.init_from:
        print("sdls train: --init-from and --init-from-gguf exclude each other", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    log = Log(out / "train.log", rank == 0)
    rest = " ".join(shlex.quote(a) for a in (sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:]))
    command = f"torchrun --nproc-per-node {world} -m sdls_model.train.cli {rest}" if world > 1 else f"sdls train {rest}"
    log(f"command: {command}")

    # -- corpus ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    dirs = args.data or default_source_dirs()
    corpus_bytes = args.corpus_bytes if args.corpus_bytes is not None else preset.corpus_bytes
    corpus = gather(
        dirs,
        args.val_permille,
        corpus_bytes,
        Decontaminator(humaneval_texts()),
        workers=max(1, preset.corpus_workers // world),
    )
    if not corpus.train:
        log(f"no usable .py files under {', '.join(map(str, dirs))}")
        return 2
    corpus_info = {
        "dirs": [str(d) for d in dirs],
        "counts": corpus.counts,
        "train_bytes": corpus.train_bytes,
        "val_bytes": sum(len(t) for t in corpus.val),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log(f"corpus: {json.dumps(corpus_info)}")

    n_tasks = args.eval_tasks if args.eval_tasks is not None else preset.eval_tasks
    eval_sizes = {"heldout": args.heldout_tasks, "latency_requests": args.latency_requests}
    if args.eval_only is not None:
        from ..checkpoint import load_checkpoint

        _cfg, model, tok = load_checkpoint(args.eval_only)
        evaluation = evaluate_model(args.eval_only, model, tok, corpus.val, n_tasks, log, **eval_sizes)
        (out / "summary.json").write_text(json.dumps({"corpus": corpus_info, "eval": evaluation}, indent=2))
        return 0

    # -- tokenizer (trained once; a resumed run reuses it) --------------------------------------
    tok_path = out / "tokenizer.json"
    init = None
    adaptation = adapted = None
    if args.init_from_gguf is not None:  # the backbone's tokenizer plus the added tokens
        from .adapt import Adaptation

        t0 = time.perf_counter()
        adaptation, adapted_cfg, adapted, adapted_tok = Adaptation.start(
            args.init_from_gguf,
            mode=args.adapter,
            block_size=args.block_size or 4,
            rank=args.lora_rank,
            alpha=args.lora_alpha,
            seed=args.seed,
            ar_baseline=args.ar_baseline,
            lora_layers=args.lora_layers,
        )
        log(
            f"adapting {args.init_from_gguf} ({adaptation.base.describe()}, {args.adapter}): "
            f"{adapted_cfg.num_parameters() / 1e6:.1f}M parameters, added {adaptation.added.tokens}, "
            f"loaded in {time.perf_counter() - t0:.0f} s"
        )
        if rank == 0:
            adapted_tok.save(tok_path)
        if args.ar_baseline:
            model_dir = out / "model"
            adaptation.save_model(model_dir, adapted, adapted_tok)
            evaluation = evaluate_model(model_dir, adapted, adapted_tok, corpus.val, n_tasks, log, **eval_sizes)
            (out / "summary.json").write_text(json.dumps({"corpus": corpus_info, "eval": evaluation}, indent=2))
            return 0
    if args.init_from is not None:  # its tokenizer and shape, so that its weights mean the same tokens
        from ..checkpoint import load_checkpoint

        init_cfg, init, init_tok = load_checkpoint(args.init_from)
        if rank == 0 and not tok_path.exists():
            init_tok.save(tok_path)
    if rank == 0 and not tok_path.exists():
        t0 = time.perf_counter()
        sample, size = [], 0
        for text in corpus.train:  # content-hash order: a deterministic, package-mixed sample
            if size >= preset.tokenizer_bytes:
                break
            sample.append(text)
            size += len(text)
        tok = train_tokenizer(sample, vocab_size=args.vocab_size or preset.vocab_size)
        tok.save(tok_path)
        log(f"tokenizer: {tok.vocab_size} tokens from {size / 1e6:.1f} MB in {time.perf_counter() - t0:.0f} s")
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        dist.barrier()
    tok = Tokenizer.from_file(tok_path)
    probe = "".join(corpus.val)[:2_000_000]
    chars_per_token = len(probe) / max(1, len(tok.encode(probe)))
    log(f"tokenizer: {chars_per_token:.2f} characters per token on validation text")

    # -- model and training ---------------------------------------------------------------------
    model_cfg = adapted.cfg if adapted is not None else ModelConfig(vocab_size=tok.vocab_size, **preset.model)
    overrides = {
        k: v
        for k, v in dict(
            steps=args.steps,
            time_budget=args.time_budget,
            batch_size=args.batch_size,
            lr=args.lr,
            threads=args.threads,
            workers=args.workers,
            dtype=args.dtype,
            compile=args.compile or None,
            seed=args.seed,
        ).items()
        if v is not None
    }
    train_cfg = replace(TrainConfig(**preset.train), **overrides)
    if adapted is not None:  # rows of about the same length in tokens whatever the block size
        bs = model_cfg.block_size
        train_cfg = replace(
            train_cfg,
            line_blocks=max(1, 24 // bs),
            span_blocks=max(1, 64 // bs),
            continue_blocks=max(1, 64 // bs),
        )
    log(f"model: {model_cfg.num_parameters() / 1e6:.2f}M parameters {json.dumps(model_cfg.to_dict())}")
    log(f"training: {json.dumps(dict(vars(train_cfg).items()))}")
    trainer = Trainer(
        model_cfg,
        tok,
        corpus.train,
        corpus.val,
        train_cfg,
        out,
        device=args.device,
        log=log,
        model=adapted,
        adaptation=adaptation,
    )
    if not trainer.resume() and init is not None:
        if init_cfg != model_cfg:
            log(f"--init-from {args.init_from}: its model ({init_cfg.to_dict()}) is not preset {args.preset}'s")
            return 2
        trainer.model.load_state_dict(init.state_dict())
        log(f"initialised from {args.init_from}")
    summary = trainer.train()
    log(f"trained: {json.dumps(summary)}")
    if world > 1:  # every rank leaves the group together: a rank exiting under live gloo threads aborts
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return 0

    # -- export, evaluate, card ------------------------------------------------------------------
    export = copy.deepcopy(trainer.model).to("cpu", dtype=getattr(torch, preset.export_dtype)).eval()
    model_dir = out / "model"
    from ..checkpoint import save_checkpoint

    write = adaptation.save_model if adaptation is not None else save_checkpoint
    write(model_dir, export, tok)
    evaluation = (
        evaluate_model(model_dir, export, tok, corpus.val, n_tasks, log, str(trainer.device), **eval_sizes)
        if n_tasks
        else {}
    )
    card = model_card(
        command=command,
        preset=args.preset,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        corpus_info=corpus_info,
        chars_per_token=chars_per_token,
        summary=summary,
        evaluation=evaluation,
        device=str(trainer.device),
        world=world,
        owed=args.owed,
        export_dtype=preset.export_dtype,
        init_from=args.init_from,
        adapted_from=f"{adaptation.base.describe()} ({args.adapter})" if adaptation is not None else None,
    )
    write(model_dir, export, tok, extra_files={"MODEL_CARD.md": card})
    (out / "summary.json").write_text(
        json.dumps({"corpus": corpus_info, "train": summary, "eval": evaluation}, indent=2)
    )
    log(f"wrote {model_dir} (with MODEL_CARD.md); curves in {out / 'loss_curves.png'}")
    return 0


def evaluate_model(
    model_dir: Path,
    model,
    tok,
    val_texts: list[str],
    n_tasks: int,
    log,
    device: str = "cpu",
    heldout: int | None = None,
    latency_requests: int = 20,
) -> dict:
    """Held-out single-line infill exact match and HumanEval single-line infill pass@1 (subset)."""
    import torch

    from .evaluate import (
        engine_infiller,
        exact_match,
        heldout_tasks,
        humaneval_line_tasks,
        pass_at_1,
        reference_infiller,
    )

    float_model = copy.deepcopy(model).float().to(device)
    stats: list = []
    try:
        infill = engine_infiller(model_dir, device=device, stats=stats)
        decoder = "sdls_model.engine (default DecodeSettings)"
    except Exception as exc:  # the engine may not be importable in every build
        log(f"engine unavailable ({type(exc).__name__}: {exc}); evaluating with the reference decoder")
        infill, decoder = reference_infiller(float_model, tok), "reference no-cache decoder, threshold 0.9"
    result = {"decoder": decoder}
    t0 = time.perf_counter()
    with torch.no_grad():
        tasks = heldout_tasks(val_texts, n_tasks if heldout is None else heldout)
        predictions = infill(tasks)
        result["heldout_line_exact_match"] = exact_match(tasks, predictions)
        result["heldout_tasks"] = len(tasks)
        he = humaneval_line_tasks(n_tasks)
        he_predictions = infill(he)
        result["humaneval_tasks_total"] = len(humaneval_line_tasks())
        result["humaneval_single_line_pass@1"] = pass_at_1(he, he_predictions)
        result["humaneval_tasks"] = len(he)
        both = predictions + he_predictions  # an empty middle means the model chose to stop at once
        result["empty_completions"] = sum(not p.split("\n", 1)[0].strip() for p in both) / max(1, len(both))
        result["examples"] = [
            {"prefix_end": t.prefix[-60:], "answer": t.answer, "prediction": p.split("\n", 1)[0]}
            for t, p in list(zip(he, he_predictions))[:5]
        ]
    if stats:  # at the model's own threshold (0.9 for sdls's models), every evaluated task
        forwards = sum(s.forwards for s in stats)
        result["tokens_per_forward"] = round(sum(s.tokens_committed for s in stats) / max(1, forwards), 3)
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    try:  # the language server's view: the engine on the CPU, a first request and the next keystroke
        from .evaluate import measure_latency

        n = latency_requests
        result.update(measure_latency(model_dir, heldout_tasks(val_texts, n, seed=1) or he[:n], device="cpu"))
    except Exception as exc:
        log(f"latency not measured ({type(exc).__name__}: {exc})")
    log(f"evaluation: {json.dumps(result)}")
    return result


def model_card(
    *,
    command: str,
    preset: str,
    model_cfg,
    train_cfg,
    corpus_info: dict,
    chars_per_token: float,
    summary: dict,
    evaluation: dict,
    device: str,
    world: int,
    owed: str,
    export_dtype: str,
    init_from: str | None = None,
    adapted_from: str | None = None,
) -> str:
    c = corpus_info["counts"]
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("train", "val"))
    ev = evaluation
    fmt = lambda v: f"{100 * v:.1f}%" if isinstance(v, float) else "not measured"
    lines = [
        f"# sdls default model ({preset} preset)",
        "",
        (
            f"A pretrained autoregressive model, {adapted_from}, adapted by `sdls train --init-from-gguf` into a "
            "block-causal masked-diffusion code model (logits shifted: row i predicts token i + 1)."
            if adapted_from
            else "A small block-causal masked-diffusion code model for Python, "
            + (
                f"trained by `sdls train`, continuing from the checkpoint in `{init_from}`."
                if init_from
                else "trained from scratch by `sdls train`."
            )
        ),
        f"Attention `{model_cfg.attention}`, infill layout `{model_cfg.infill_layout}`, block size "
        f"{model_cfg.block_size}, weights {export_dtype}.",
        "",
    ]
    if owed:
        lines += [f"**{owed}**", ""]
    lines += [
        "## Model",
        f"- {model_cfg.num_parameters() / 1e6:.2f}M parameters: {model_cfg.n_layers} layers x {model_cfg.d_model}, "
        f"{model_cfg.n_heads} query / {model_cfg.n_kv_heads} key-value heads, SwiGLU {model_cfg.ffn_size}, "
        f"vocabulary {model_cfg.vocab_size} (tied embeddings), RoPE theta {model_cfg.rope_theta:g}.",
        "",
        "## Data",
        f"- Python files from: {', '.join(corpus_info['dirs'])}.",
        f"- Kept {c.get('train', 0)} training files ({corpus_info['train_bytes'] / 1e6:.1f} MB) and {c.get('val', 0)} "
        f"validation files ({corpus_info['val_bytes'] / 1e6:.1f} MB, split by content hash).",
        f"- Dropped: {rejected} (HumanEval decontamination: any 13-identifier run shared with a prompt or "
        "canonical solution).",
        f"- Tokenizer: byte-level BPE, {model_cfg.vocab_size} tokens, {chars_per_token:.2f} characters per token.",
        "",
        "## Training",
        f"- Device: {device} x {world}; {summary['steps']} steps, {summary['tokens_seen'] / 1e6:.1f}M tokens seen "
        f"(row tokens, context + clean + noisy middle), {summary['wall_seconds'] / 60:.1f} min wall clock, "
        f"{summary['tokens_per_second']:.0f} tokens/s in training steps.",
        f"- Stage 1 (mask diffusion, per-block t ~ U(0,1), CE x 1/t) then stage 2 (edit corruption, last "
        f"{100 * train_cfg.stage2_fraction:.0f}% of the schedule). Rows: {json.dumps(train_cfg.mix)}; "
        f"contexts up to {train_cfg.context} tokens, batch {train_cfg.batch_size} rows, AdamW lr {train_cfg.lr:g} "
        "warmup + cosine, clip 1.0.",
        f"- Train loss (mean of the last 50 steps, stage 2) {summary['train_loss_last50']:.3f}; validation loss, mask objective "
        f"{summary.get('val_stage1', float('nan')):.3f}, edit objective {summary.get('val_stage2', float('nan')):.3f}.",
        "",
        "## Quality",
        f"- Held-out single-line infill exact match: {fmt(ev.get('heldout_line_exact_match'))} "
        f"({ev.get('heldout_tasks', 0)} lines of validation files).",
        f"- HumanEval single-line infill pass@1: {fmt(ev.get('humaneval_single_line_pass@1'))} "
        f"({ev.get('humaneval_tasks', 0)} seeded tasks of {ev.get('humaneval_tasks_total', '?')}: code lines of the "
        "canonical solutions, cursor after the line's indentation; comment lines skipped).",
        f"- Empty completions (the model stops at once): {fmt(ev.get('empty_completions'))} of all evaluated lines.",
        f"- Decoder: {ev.get('decoder', 'none')}; {ev.get('tokens_per_forward', 'not measured')} tokens per forward "
        f"at the model's threshold ({model_cfg.threshold}).",
        "",
        "## Speed (engine, single-line completion, default decoding settings)",
        f"- {ev.get('device', 'cpu')} ({ev.get('dtype', 'float32')}), {ev.get('torch_threads', '?')} torch thread(s), "
        f"{ev.get('latency_requests', 0)} "
        f"held-out lines, median context {ev.get('context_tokens_p50', '?')} tokens: first request on a document "
        f"{ev.get('latency_first_request_ms_p50', '?')} ms p50, next keystroke (cached context) "
        f"{ev.get('latency_next_keystroke_ms_p50', '?')} ms p50, {ev.get('ms_per_forward_p50', '?')} ms per forward.",
        "",
        "## Reproduce",
        "```",
        command,
        "```",
        "The GPU recipe: `sdls train --preset gpu --out runs/gpu` (one H100/H200, 6 minutes of training, "
        "under 10 minutes end to end), or `torchrun --nproc-per-node N -m sdls_model.train.cli --preset gpu --out runs/gpu`.",
        "",
        f"Python {platform.python_version()}, written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:  # `torchrun -m sdls_model.train.cli ...`
    parser = argparse.ArgumentParser(prog="sdls train")
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
