"""`sdls train --stage order`: constrained-order trajectories, kept by likelihood and def-use order.

1. Cut training spans (whole lines that declare a name and then read it) from the corpus.
2. Sample K trajectories per span from the current model (`trajectories.sample_trajectories`: the
   first its greedy order, the others Plackett-Luce draws at a temperature).
3. Score each: the span's mean log-likelihood along the trajectory (nats per token) minus
   `--def-use-penalty` for every use committed before its declaration (tree-sitter def-use links).
4. Keep the best trajectory of each span; write every trajectory to trajectories.jsonl
   (docs/seed_stages.md describes the format).
5. Fine-tune with masks that follow the kept orders (`order_stage.ordered_batch`).
Figures before and after on held-out spans go to summary.json and the model card.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from sdls_model.train.cli import Log

from .spans import Span, draw_spans, violations
from .stage_io import load_corpus, load_model, write_outputs


def score(traj, span: Span, block_size: int, penalty: float) -> float:
    return traj.mean_log_likelihood - penalty * violations(span.links, traj.commit_step, block_size)


def sample_and_keep(model, spans: list[Span], args, seed: int):
    """Trajectories of every span and the index of the kept one."""
    from sdls_model.train.trajectories import sample_trajectories

    bs = model.cfg.block_size
    trajs = sample_trajectories(
        model, [(s.context, s.middle) for s in spans], args.trajectories, args.order_steps, args.order_temperature, seed
    )
    kept = [max(range(len(ts)), key=lambda i: score(ts[i], s, bs, args.def_use_penalty)) for s, ts in zip(spans, trajs)]
    return trajs, kept


def count_violations(spans: list[Span], chosen, block_size: int) -> tuple[int, int]:
    """(links violated, links) over spans, for one trajectory per span."""
    return sum(violations(s.links, t.commit_step, block_size) for s, t in zip(spans, chosen)), sum(
        len(s.links) for s in spans
    )


def write_trajectories(path: Path, spans: list[Span], paths: list[str], trajs, kept, block_size: int, penalty: float):
    with path.open("w") as f:
        for span, ts, k in zip(spans, trajs, kept):
            record = {
                "file": paths[span.file],
                "start": span.start,
                "end": span.end,
                "block_size": block_size,
                "context": span.context,
                "middle": span.middle,
                "links": [list(link) for link in span.links],
                "kept": k,
                "trajectories": [
                    {
                        "temperature": t.temperature,
                        "commit_step": list(t.commit_step),
                        "log_likelihood": round(t.log_likelihood, 4),
                        "mean_log_likelihood": round(t.mean_log_likelihood, 4),
                        "violations": violations(span.links, t.commit_step, block_size),
                        "score": round(score(t, span, block_size, penalty), 4),
                    }
                    for t in ts
                ],
            }
            f.write(json.dumps(record) + "\n")


def run(args, preset) -> int:
    import torch

    from sdls_model.train.finetune import finetune, mean_loss
    from sdls_model.train.order_stage import OrderedSpan, ordered_batch, uniform_batch

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "train.log", True)
    log(f"stage order: {vars(args)}")
    t_start = time.perf_counter()
    corpus = load_corpus(args, preset, log)
    source, cfg, model, tok = load_model(args, log)
    bs, rng = cfg.block_size, random.Random(args.seed)
    blocks, context = args.span_blocks or preset.train["span_blocks"], preset.train["context"]
    spans = draw_spans(cfg, tok, corpus.train, args.spans, blocks, context, rng)
    held = draw_spans(
        cfg, tok, corpus.val or corpus.train, max(8, args.spans // 4), blocks, context, random.Random(args.seed + 1)
    )
    if not spans:
        log("no span of the training files declares a name and then reads it; nothing to train on")
        return 2
    log(
        f"spans: {len(spans)} training, {len(held)} held-out ({blocks} blocks of {bs}), {sum(len(s.links) for s in spans)} def-use links"
    )

    t0 = time.perf_counter()
    trajs, kept = sample_and_keep(model, spans, args, args.seed)
    held_trajs, held_kept = sample_and_keep(model, held, args, args.seed + 1)
    sampling_s = time.perf_counter() - t0
    greedy = count_violations(spans, [ts[0] for ts in trajs], bs)
    chosen = count_violations(spans, [ts[k] for ts, k in zip(trajs, kept)], bs)
    log(
        f"sampled {args.trajectories} trajectories x {len(spans) + len(held)} spans in {sampling_s:.0f} s; "
        f"def-use violations greedy {greedy[0]}/{greedy[1]}, kept {chosen[0]}/{chosen[1]}"
    )
    write_trajectories(out / "trajectories.jsonl", spans, corpus.train_paths, trajs, kept, bs, args.def_use_penalty)

    to_ordered = lambda ss, ts, ks: [
        OrderedSpan(s.context, s.middle, list(t[k].commit_step)) for s, t, k in zip(ss, ts, ks)
    ]
    train_rows, held_rows = to_ordered(spans, trajs, kept), to_ordered(held, held_trajs, held_kept)
    eval_rng = lambda: random.Random(1234)
    eval_order = lambda: mean_loss(
        model,
        [ordered_batch(cfg, held_rows[i : i + 16], eval_rng(), tok.vocab_size) for i in range(0, len(held_rows), 16)],
    )
    eval_uniform = lambda: mean_loss(
        model,
        [uniform_batch(cfg, held_rows[i : i + 16], eval_rng(), tok.vocab_size) for i in range(0, len(held_rows), 16)],
    )
    before = {"held_order_loss": eval_order(), "held_uniform_loss": eval_uniform()}
    held_greedy_before = count_violations(held, [ts[0] for ts in held_trajs], bs)

    batch_rng = random.Random(args.seed + 7)
    batch_size = args.batch_size or preset.train["batch_size"]
    steps = args.steps if args.steps is not None else 200
    next_batch = lambda step: ordered_batch(
        cfg, batch_rng.sample(train_rows, min(batch_size, len(train_rows))), batch_rng, tok.vocab_size
    )
    t0 = time.perf_counter()
    losses = finetune(model, next_batch, steps, args.lr or 5e-4, log=log)
    finetune_s = time.perf_counter() - t0

    after = {"held_order_loss": eval_order(), "held_uniform_loss": eval_uniform()}
    from sdls_model.train.trajectories import sample_trajectories

    with torch.no_grad():
        regreedy = sample_trajectories(
            model, [(s.context, s.middle) for s in held], 1, args.order_steps, seed=args.seed + 1
        )
    held_greedy_after = count_violations(held, [ts[0] for ts in regreedy], bs)
    tail = losses[-20:] or [float("nan")]
    summary = {
        "stage": "order",
        "init_from": str(source),
        "spans": len(spans),
        "held_out_spans": len(held),
        "trajectories_per_span": args.trajectories,
        "steps_per_block": args.order_steps,
        "temperature": args.order_temperature,
        "def_use_penalty": args.def_use_penalty,
        "violations_greedy": list(greedy),
        "violations_kept": list(chosen),
        "held_out_greedy_violations_before": list(held_greedy_before),
        "held_out_greedy_violations_after": list(held_greedy_after),
        "kept_is_greedy": sum(k == 0 for k in kept),
        "finetune_steps": steps,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last20": sum(tail) / len(tail),
        "before": before,
        "after": after,
        "sampling_seconds": round(sampling_s, 1),
        "finetune_seconds": round(finetune_s, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    log(f"order stage: {json.dumps(summary)}")
    card = stage_card("order", source, summary, args)
    write_outputs(out, model, tok, card, summary, log)
    return 0


def stage_card(stage: str, source, summary: dict, args) -> str:
    lines = [
        f"# sdls model after the {stage} stage",
        "",
        f"Continued from `{source}` by `sdls train --stage {stage}` (see docs/seed_stages.md).",
        "",
        "## Figures of the run",
        "```json",
        json.dumps(summary, indent=2),
        "```",
        "",
        f"Arguments: `{json.dumps({k: str(v) for k, v in vars(args).items() if not k.startswith('_')})}`",
    ]
    return "\n".join(lines) + "\n"
