"""The training loop: AdamW, warmup + cosine, gradient clipping, both stages, evaluation, checkpoints.

One schedule drives everything through `progress` in [0, 1]: the larger of steps done / steps
planned and time spent / time budget. The learning rate follows it, stage 2 starts when it passes
`1 - stage2_fraction`, and training stops at 1; so a wall-clock budget still gives a decayed
learning rate and a full edit stage, and ends cleanly with a checkpoint.
Runs on the CPU, one GPU, or several under `torchrun` (DDP, detected from the environment).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..config import ModelConfig
from ..tokenizer import Tokenizer
from ..transformer import Transformer
from .objectives import Batch, RowPlan, build_rows, collate, diffusion_loss


@dataclass
class TrainConfig:
    steps: int = 1000  # planned optimizer steps (the time budget may end sooner)
    batch_size: int = 16  # rows per step per process
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of lr
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    stage2_fraction: float = 0.2  # last part of training uses the edit objective
    context: int = 256  # most context tokens (BOS, markers, suffix, prefix); each batch
    # of line/span rows draws its budget from [context / 4, context]
    line_blocks: int = 1  # middle blocks of "line" rows
    span_blocks: int = 3  # middle blocks of "span" rows
    continue_blocks: int = 6  # middle blocks of "continue" rows
    continue_context: int = 128  # context tokens of "continue" rows
    mix: dict[str, float] = field(default_factory=lambda: {"line": 0.4, "span": 0.25, "continue": 0.35})
    time_budget: float | None = None  # seconds of training (excluding evaluation at the end)
    eval_every: int = 100
    eval_batches: int = 4  # per row kind and stage
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    dtype: str = "float32"  # "bfloat16" autocasts matmuls on a GPU
    compile: bool = False
    workers: int = 0  # DataLoader processes building batches (0: in the training process)
    threads: int | None = None  # CPU threads (torch.set_num_threads)

    def plans(self) -> dict[str, RowPlan]:
        return {
            "line": RowPlan("line", self.context, self.line_blocks),
            "span": RowPlan("span", self.context, self.span_blocks),
            "continue": RowPlan("continue", self.continue_context, self.continue_blocks),
        }


def lr_at(progress: float, step: int, cfg: TrainConfig) -> float:
    """Linear warmup over `warmup_steps`, then cosine from lr to lr * min_lr_ratio as progress goes 0 -> 1."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def stage_at(progress: float, cfg: TrainConfig) -> int:
    return 2 if progress >= 1 - cfg.stage2_fraction else 1


class LossModule(nn.Module):
    """Wraps the transformer so that DDP sees one forward that returns the loss."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return diffusion_loss(self.model, batch)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """DDP when launched by torchrun (WORLD_SIZE > 1), a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


class BatchSource:
    """Random batches of one rank: a row kind drawn from the mix, rows from random files, noise of the stage."""

    def __init__(self, model_cfg: ModelConfig, tok: Tokenizer, texts: list[str], cfg: TrainConfig, seed: int):
        if not texts:
            raise ValueError("no training texts")
        self.model_cfg, self.tok, self.texts, self.cfg = model_cfg, tok, texts, cfg
        self.rng = random.Random(seed)
        self.plans = cfg.plans()
        self.cum_lengths = list(itertools.accumulate(len(t) for t in texts))
        self.kinds = [k for k in self.plans if cfg.mix.get(k, 0) > 0]
        self.weights = [cfg.mix[k] for k in self.kinds]

    def next(self, stage: int) -> Batch:
        plan = self.plans[self.rng.choices(self.kinds, weights=self.weights)[0]]
        if plan.kind != "continue":  # contexts of every length up to the budget, so every position is trained
            plan = replace(plan, context=self.rng.randint(max(16, plan.context // 4), plan.context))
        rows = build_rows(self.model_cfg, self.tok, self.texts, plan, self.cfg.batch_size, self.rng, self.cum_lengths)
        return collate(self.model_cfg, rows, stage, self.rng, self.tok.vocab_size)


class BatchStream(torch.utils.data.IterableDataset):
    """Endless batches from DataLoader worker processes; the stage is read from a shared value,
    so the switch to stage 2 reaches the workers within a few prefetched batches."""

    def __init__(self, model_cfg: ModelConfig, tok: Tokenizer, texts: list[str], cfg: TrainConfig, seed: int):
        super().__init__()
        self.args = (model_cfg, tok, texts, cfg)
        self.seed = seed
        self.stage = torch.multiprocessing.Value("i", 1)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        source = BatchSource(*self.args, seed=self.seed * 100 + (info.id if info else 0))
        while True:
            yield source.next(self.stage.value)


def fixed_val_batches(
    model_cfg: ModelConfig, tok: Tokenizer, texts: list[str], cfg: TrainConfig
) -> dict[int, list[Batch]]:
    """The same validation batches at every evaluation (fixed seed), for each stage's objective."""
    out: dict[int, list[Batch]] = {}
    for stage in (1, 2):
        rng = random.Random(1234 + stage)
        out[stage] = [
            collate(model_cfg, build_rows(model_cfg, tok, texts, plan, cfg.batch_size, rng), stage, rng, tok.vocab_size)
            for plan in cfg.plans().values()
            for _ in range(cfg.eval_batches)
        ]
    return out


@torch.no_grad()
def evaluate_loss(loss_module: LossModule, batches: list[Batch], device, autocast) -> float:
    loss_module.eval()
    total = 0.0
    for batch in batches:
        with autocast():
            total += float(loss_module(batch.to(device)))
    loss_module.train()
    return total / max(1, len(batches))


class Trainer:
    def __init__(
        self,
        model_cfg: ModelConfig,
        tok: Tokenizer,
        train_texts: list[str],
        val_texts: list[str],
        cfg: TrainConfig,
        out_dir: Path,
        device: str | None = None,
        log=print,
        model: Transformer | None = None,
        adaptation=None,
    ):
        """model: start from these weights (an adapted backbone) instead of a fresh init; adaptation
        (train/adapt.py): which of them train and how checkpoints are written."""
        self.model_cfg, self.tok, self.cfg, self.out_dir, self.log = model_cfg, tok, cfg, Path(out_dir), log
        self.adaptation = adaptation
        self.dist = setup_distributed()
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = (model if model is not None else Transformer(model_cfg).init_weights(cfg.seed)).to(self.device)
        self.loss_module = LossModule(self.model)
        self.forward = self.loss_module
        if cfg.compile:
            self.forward = torch.compile(self.loss_module, dynamic=True)
        if self.dist.world > 1:
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=[self.dist.local_rank] if self.device.type == "cuda" else None
            )
        if adaptation is not None:
            groups = adaptation.param_groups(self.model, cfg.weight_decay)
        else:
            decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
            no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
            groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=cfg.lr,
            betas=cfg.betas,
            fused=fused,
        )
        self.source = BatchSource(model_cfg, tok, train_texts, cfg, seed=cfg.seed * 1000 + self.dist.rank)
        self.train_texts = train_texts
        self.stream = None
        self.val = fixed_val_batches(model_cfg, tok, val_texts or train_texts[:8], cfg) if self.dist.main else {}
        self.step, self.elapsed, self.tokens_seen = 0, 0.0, 0
        self.step_seconds = 0.0  # time inside training steps (throughput), not evaluation
        self.history: dict[str, list] = {"train": [], "val": []}
        self.autocast = self._autocast_factory()

    def _autocast_factory(self):
        if self.cfg.dtype == "bfloat16":
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.cfg.dtype != "float32":
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.cfg.dtype!r}")
        return lambda: torch.autocast(self.device.type, enabled=False)

    # -- progress ------------------------------------------------------------------------------
    def progress(self) -> float:
        by_steps = self.step / self.cfg.steps
        by_time = self.elapsed / self.cfg.time_budget if self.cfg.time_budget else 0.0
        value = max(by_steps, by_time)
        if self.dist.world > 1:  # every rank must agree on the stage and on when to stop
            t = torch.tensor([value], device=self.device)
            dist.broadcast(t, 0)
            value = float(t)
        return value

    # -- state ---------------------------------------------------------------------------------
    def state_path(self) -> Path:
        return self.out_dir / "train_state.pt"

    def save(self, tag: str | None = None) -> Path | None:
        """Weights in the engine's format (latest/ and, with a tag, checkpoints/<tag>/) plus the
        optimizer and sampler state for resuming."""
        if not self.dist.main:
            return None
        from ..checkpoint import save_checkpoint

        write = self.adaptation.save_model if self.adaptation is not None else save_checkpoint
        latest = self.out_dir / "latest"
        write(latest, self.model, self.tok)
        if tag:
            write(self.out_dir / "checkpoints" / tag, self.model, self.tok)
        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "tokens_seen": self.tokens_seen,
            "step_seconds": self.step_seconds,
            "optimizer": self.optimizer.state_dict(),
            "model": self.adaptation.trainable_state(self.model) if self.adaptation else self.model.state_dict(),
            "rng": self.source.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "train_config": asdict(self.cfg),
            "model_config": self.model_cfg.to_dict(),
        }
        tmp = self.state_path().with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path())  # atomic: a crash mid-save leaves the previous state
        (self.out_dir / "history.json").write_text(json.dumps(self.history))
        return latest

    def resume(self) -> bool:
        path = self.state_path()
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved_cfg = ModelConfig.from_dict(state["model_config"])
        if saved_cfg != self.model_cfg:
            raise ValueError(f"{path}: saved model config differs from this run's; use a fresh --out")
        if self.adaptation is not None:
            self.adaptation.load_trainable(self.model, state["model"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed, self.tokens_seen = state["step"], state["elapsed"], state["tokens_seen"]
        self.step_seconds = state.get("step_seconds", 0.0)
        self.history = state["history"]
        if self.dist.main:
            self.source.rng.setstate(state["rng"])
        else:  # other ranks: a fresh stream that does not repeat the one they already used
            self.source.rng = random.Random(self.cfg.seed * 1000 + self.dist.rank + 7919 * self.step)
        torch.set_rng_state(state["torch_rng"])
        self.log(f"resumed from {path} at step {self.step} ({self.elapsed:.0f} s, {self.tokens_seen:,} tokens)")
        return True

    # -- loop ----------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        if not self.dist.main:
            return {}
        row = {"step": self.step, "tokens": self.tokens_seen}
        for stage, batches in self.val.items():
            row[f"val_stage{stage}"] = evaluate_loss(self.loss_module, list(batches), self.device, self.autocast)
        self.history["val"].append(row)
        return row

    def train(self) -> dict:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.workers > 0:  # seeded by the step too, so a resumed run does not replay its data
            self.stream = BatchStream(
                self.model_cfg,
                self.tok,
                self.train_texts,
                cfg,
                seed=cfg.seed * 1000 + self.dist.rank + 7919 * self.step,
            )
            import multiprocessing

            context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None  # share the texts
            self.loader = iter(
                torch.utils.data.DataLoader(
                    self.stream,
                    batch_size=None,
                    num_workers=cfg.workers,
                    prefetch_factor=4,
                    pin_memory=self.device.type == "cuda",
                    multiprocessing_context=context,
                )
            )
        self.model.train()
        window_tokens, window_start, last_loss = 0, time.perf_counter(), float("nan")
        # Wall-clock time counts against the budget, evaluation and checkpoints included.
        run_start, elapsed_before = time.perf_counter(), self.elapsed
        while True:
            self.elapsed = elapsed_before + time.perf_counter() - run_start
            progress = self.progress()
            if progress >= 1.0:
                break
            t0 = time.perf_counter()
            stage = stage_at(progress, cfg)
            lr = lr_at(progress, self.step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if self.stream is not None:
                self.stream.stage.value = stage
                batch = next(self.loader).to(self.device)
            else:
                batch = self.source.next(stage).to(self.device)
            with self.autocast():
                loss = self.forward(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
            self.optimizer.step()
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                raise FloatingPointError(f"loss became {last_loss} at step {self.step}; lower --lr")
            self.step += 1
            step_tokens = batch.n_tokens * self.dist.world
            self.tokens_seen += step_tokens
            window_tokens += step_tokens
            self.step_seconds += time.perf_counter() - t0
            self.history["train"].append([self.step, stage, round(last_loss, 5), lr])
            if self.dist.main and (self.step % cfg.log_every == 0 or self.step == 1):
                rate = window_tokens / max(1e-9, time.perf_counter() - window_start)
                window_tokens, window_start = 0, time.perf_counter()
                self.log(
                    f"step {self.step:6d} stage {stage} loss {last_loss:7.4f} lr {lr:.2e} "
                    f"gnorm {grad_norm:6.2f} {rate:8.0f} tok/s  {self.tokens_seen / 1e6:7.2f}M tok  "
                    f"{100 * min(1.0, progress):5.1f}%"
                )  # progress() is a collective: never on one rank only
            if self.step % cfg.eval_every == 0:
                row = self.evaluate()
                if row:
                    self.log(
                        "eval "
                        + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
                    )
            if self.step % cfg.checkpoint_every == 0:
                self.save(tag=f"step{self.step:06d}")
        final = self.evaluate()
        self.save(tag=f"step{self.step:06d}")
        if self.dist.main:
            plot_curves(self.history, self.out_dir / "loss_curves.png", cfg.stage2_fraction)
        return {
            "steps": self.step,
            "tokens_seen": self.tokens_seen,
            "wall_seconds": self.elapsed,
            "step_seconds": self.step_seconds,
            "tokens_per_second": self.tokens_seen / max(1e-9, self.step_seconds),
            "final_train_loss": last_loss,
            "train_loss_last50": sum(r[2] for r in self.history["train"][-50:])
            / max(1, len(self.history["train"][-50:])),
            **{k: v for k, v in final.items() if k.startswith("val")},
        }


def smooth(values: list[float], width: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def plot_curves(history: dict, path: Path, stage2_fraction: float) -> None:
    """Training loss (smoothed, coloured by stage) and both validation losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = history["train"]
    if not train:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = [r[0] for r in train]
    losses = smooth([r[2] for r in train], max(1, len(train) // 100))
    for stage, colour in ((1, "tab:blue"), (2, "tab:orange")):
        xs = [s for s, r in zip(steps, train) if r[1] == stage]
        ys = [l for l, r in zip(losses, train) if r[1] == stage]
        if xs:
            ax.plot(xs, ys, color=colour, alpha=0.7, label=f"train (stage {stage}, smoothed)")
    for key, style in (("val_stage1", "o-"), ("val_stage2", "s--")):
        pts = [(r["step"], r[key]) for r in history["val"] if key in r]
        if pts:
            ax.plot(*zip(*pts), style, label=f"val, {'mask' if key.endswith('1') else 'edit'} objective")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (weighted CE per middle token)")
    ax.set_title("sdls diffusion training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
