"""`sdls train --stage onpolicy`: fewer steps, with the verifier guarding what is learned.

1. Prompts: single-line holes in training files (the cursor after the line's indentation, as inline
   completion asks), each a context in the fim layout.
2. The current model decodes each twice: slowly (one token per step) and at the low budget
   (`--fast-steps` steps per block).
3. The verifier (`verifier.py`: clean-up, syntax, agreement with the slow output) judges both: the
   fast output's verdict is the pass rate before training; a prompt whose slow output passes the
   clean-up and parses becomes a distillation target (its order compressed to the low budget).
4. Self-distillation on the targets (`onpolicy_stage`): cross-entropy on every position still masked
   at each few-step state, which raises the confidence of tokens the slow decoding would commit
   later, so the threshold rule commits more of them per forward.
Figures before/after on held-out prompts: tokens per forward at the low budget and at threshold
0.9, the verifier's pass rate; summary.json and the model card.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from sdls_model.train.cli import Log

from ..syntax.diagnostics import syntax_errors
from ..syntax.document import SyntaxDocument
from .order import stage_card
from .stage_io import load_corpus, load_model, write_outputs
from .verifier import Verifier


def prompts(cfg, tok, texts: list[str], count: int, context: int, seed: int):
    """(verifier, fim context, answer) of `count` single-line holes, spread evenly over the files
    (taken in a seeded order)."""
    from sdls_model.train.evaluate import line_tasks
    from sdls_model.train.objectives import fit_context

    rng = random.Random(seed)
    order = sorted(range(len(texts)), key=lambda _: rng.random())
    per_file = max(1, -(-count // max(1, len(texts))))
    tasks = []
    for i in order:
        tasks += line_tasks(texts[i], rng, per_file)
        if len(tasks) >= count:
            break
    out, parses = [], {}
    for task in tasks[:count]:
        ctx = fit_context(cfg, tok.encode(task.prefix[-context * 6 :]), tok.encode(task.suffix[: context * 6]), context)
        whole = task.prefix + task.answer + task.suffix
        if whole not in parses:  # a file that never parsed cannot be asked to parse once filled in
            parses[whole] = not syntax_errors(SyntaxDocument(whole, "python"))
        out.append((Verifier(task.prefix, task.suffix, file_parses=parses[whole]), ctx, task.answer))
    return out


def judge(model, tok, items, fast_steps: int, threshold: float | None = None, slow=None):
    """Decode every prompt slowly (unless `slow` is given) and fast; the verdicts and what it cost."""
    from sdls_model.train.parallel_decode import decode_spans

    cfg = model.cfg
    contexts = [ctx for _, ctx, _ in items]
    if slow is None:
        slow = decode_spans(model, contexts, 1, steps=cfg.block_size)
    if threshold is None:
        fast = decode_spans(model, contexts, 1, steps=fast_steps)
    else:
        fast = decode_spans(model, contexts, 1, threshold=threshold)
    text = lambda d: tok.decode(d.answer(cfg.stop_ids))
    slow_ok = [v.check(text(s), None) for (v, _, _), s in zip(items, slow)]
    fast_ok = [v.check(text(f), text(s)) for (v, _, _), s, f in zip(items, slow, fast)]
    committed, forwards = sum(f.committed for f in fast), sum(f.forwards for f in fast)
    return slow, fast, slow_ok, fast_ok, committed / max(1, forwards)


def run(args, preset) -> int:
    from sdls_model.train.finetune import finetune, mean_loss
    from sdls_model.train.onpolicy_stage import distillation_spans
    from sdls_model.train.order_stage import ordered_batch

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "train.log", True)
    log(f"stage onpolicy: {vars(args)}")
    t_start = time.perf_counter()
    corpus = load_corpus(args, preset, log)
    source, cfg, model, tok = load_model(args, log)
    context = preset.train["context"]
    train_items = prompts(cfg, tok, corpus.train, args.spans, context, args.seed)
    held_items = prompts(cfg, tok, corpus.val or corpus.train, max(8, args.spans // 4), context, args.seed + 1)
    log(f"prompts: {len(train_items)} training, {len(held_items)} held-out single-line holes")

    t0 = time.perf_counter()
    slow, fast, slow_ok, fast_ok, tpf = judge(model, tok, train_items, args.fast_steps)
    decode_s = time.perf_counter() - t0
    reasons: dict[str, int] = {}
    for v in slow_ok:
        key = v.reason.split(":")[0] if not v.reason.startswith("clean-up: nothing") else "empty"
        reasons[key] = reasons.get(key, 0) + 1
    keep = [v.passed for v in slow_ok]
    log(
        f"decoded {len(train_items)} prompts slow and at {args.fast_steps} steps in {decode_s:.0f} s: "
        f"fast output verified {sum(v.passed for v in fast_ok)}/{len(fast_ok)}; slow output usable as a "
        f"target {sum(keep)}/{len(keep)} (verdicts {reasons})"
    )
    rows = distillation_spans([c for _, c, _ in train_items], slow, keep, cfg.block_size, args.fast_steps)
    if not rows:
        log("the verifier refused every slow output: nothing to distil")
        return 2
    with (out / "targets.jsonl").open("w") as f:
        for (v, _, answer), s, sv, fv, fd in zip(train_items, slow, slow_ok, fast_ok, fast):
            f.write(
                json.dumps(
                    {
                        "prefix_end": v.prefix[-80:],
                        "answer": answer,
                        "slow": tok.decode(s.answer(cfg.stop_ids)),
                        "slow_commit_step": list(s.commit_step),
                        "slow_verdict": sv.reason,
                        "fast": tok.decode(fd.answer(cfg.stop_ids)),
                        "fast_verdict": fv.reason,
                        "target": sv.passed,
                    }
                )
                + "\n"
            )

    def held_figures() -> dict:
        n, figures, slow = max(1, len(held_items)), {}, None
        for name, threshold in ((f"fast{args.fast_steps}", None), ("threshold0.9", 0.9)):
            slow, fast, _, verdicts, tpf = judge(model, tok, held_items, args.fast_steps, threshold, slow)
            exact = sum(
                tok.decode(d.answer(cfg.stop_ids)).split("\n")[0].strip() == answer.strip()
                for d, (_, _, answer) in zip(fast, held_items)
            )
            figures[f"{name}_tokens_per_forward"] = round(tpf, 3)
            figures[f"{name}_pass_rate"] = round(sum(v.passed for v in verdicts) / n, 3)
            figures[f"{name}_exact_match"] = round(exact / n, 3)
        return figures

    before = held_figures()
    eval_batches = [
        ordered_batch(cfg, rows[i : i + 16], random.Random(1234), tok.vocab_size) for i in range(0, len(rows), 16)
    ]
    loss_before = mean_loss(model, eval_batches)
    batch_rng = random.Random(args.seed + 11)
    batch_size = args.batch_size or preset.train["batch_size"]
    steps = args.steps if args.steps is not None else 200
    next_batch = lambda step: ordered_batch(
        cfg, batch_rng.sample(rows, min(batch_size, len(rows))), batch_rng, tok.vocab_size
    )
    t0 = time.perf_counter()
    losses = finetune(model, next_batch, steps, args.lr or 5e-4, log=log)
    finetune_s = time.perf_counter() - t0
    after = held_figures()
    summary = {
        "stage": "onpolicy",
        "init_from": str(source),
        "prompts": len(train_items),
        "held_out_prompts": len(held_items),
        "fast_steps_per_block": args.fast_steps,
        "train_fast_verified": sum(v.passed for v in fast_ok),
        "train_fast_tokens_per_forward": round(tpf, 3),
        "targets": len(rows),
        "slow_verdicts": reasons,
        "finetune_steps": steps,
        "distill_loss_before": loss_before,
        "distill_loss_after": mean_loss(model, eval_batches),
        "held_out_before": before,
        "held_out_after": after,
        "decode_seconds": round(decode_s, 1),
        "finetune_seconds": round(finetune_s, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
    }
    log(f"onpolicy stage: {json.dumps(summary)}")
    write_outputs(out, model, tok, stage_card("onpolicy", source, summary, args), summary, log)
    return 0
