"""A training run that adapts a pretrained AR backbone (`sdls train --init-from-gguf PATH`).

`Adaptation` says what trains and how the result is written:
- "lora": the backbone frozen; low-rank adapters on every linear layer, the RMSNorm weights and the
  added tokens' embedding rows train (the other rows get no update: their gradient is zeroed and
  they carry no weight decay). Written in the shipping form (checkpoint_adapter.py): a few MB on
  top of the base, which comes from its package.
- "full": every weight trains; written as an ordinary sdls checkpoint (the size of the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..adaptation import AddedRows, adapt_backbone, ar_baseline_config
from ..checkpoint_adapter import BaseWeights, base_for, load_base, save_adapter
from ..config import ModelConfig
from ..lora import add_lora
from ..tokenizer import Tokenizer
from ..transformer import Transformer

MODES = ("lora", "full")


@dataclass
class Adaptation:
    mode: str
    base: BaseWeights
    base_tokenizer: Tokenizer
    added: AddedRows
    lora_scale: float = 0.0
    replaced_names: tuple[str, ...] = ()  # base tensors a LoRA run trains whole (RMSNorm weights)

    @classmethod
    def start(
        cls,
        base_path: Path,
        mode: str = "lora",
        block_size: int = 4,
        rank: int = 16,
        alpha: float | None = None,
        seed: int = 0,
        ar_baseline: bool = False,
        lora_layers: int | None = None,
    ) -> tuple[Adaptation, ModelConfig, Transformer, Tokenizer]:
        """Load the backbone, add the tokens, switch the config; wrap it for `mode`. lora_layers K:
        adapt only the top K layers; the layers below and the embedding stay frozen, so the backward
        pass stops at layer n - K (cheaper steps; the new rows then keep their initial mean value)."""
        if mode not in MODES:
            raise ValueError(f"adapter mode must be one of {MODES}, got {mode!r}")
        base_path = Path(base_path)
        if not base_path.exists():
            raise FileNotFoundError(f"{base_path}: no such base model file")
        base = base_for(base_path)
        base_cfg, base_model, base_tok = load_base(base_path)
        cfg, model, tok, added = adapt_backbone(base_cfg, base_model, base_tok, block_size)
        if ar_baseline:
            cfg = ar_baseline_config(cfg)
            model.cfg = cfg
        adaptation = cls(mode, base, base_tok, added)
        if mode == "lora" and not ar_baseline:
            alpha = float(2 * rank if alpha is None else alpha)
            n = cfg.n_layers
            k = n if lora_layers is None else lora_layers
            if not 1 <= k <= n:
                raise ValueError(f"--lora-layers must be in 1..{n}, got {k}")
            for i in range(n - k, n):
                add_lora(model.layers[i], rank, alpha, seed=seed * 1000 + i)
            adaptation.lora_scale = alpha / rank
            top = tuple(f"layers.{i}." for i in range(n - k, n))
            adaptation.replaced_names = tuple(
                name
                for name, _ in model.named_parameters()
                if name.endswith("norm.weight") and (name.startswith(top) or name == "norm.weight")
            )
            adaptation.freeze_base(model, train_rows=k == n)
        return adaptation, cfg, model, tok

    # -- what trains ----------------------------------------------------------------------------
    def freeze_base(self, model: torch.nn.Module, train_rows: bool = True) -> None:
        replaced = set(self.replaced_names)
        for name, p in model.named_parameters():
            p.requires_grad_(name in replaced or "lora_" in name or (train_rows and name == "embed_tokens.weight"))
        if not train_rows:
            return
        weight = model.embed_tokens.weight
        rows = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
        rows[sorted(self.added.tokens)] = 1
        weight.register_hook(lambda grad: grad * rows.to(grad.device, grad.dtype))

    def param_groups(self, model: torch.nn.Module, weight_decay: float) -> list[dict]:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.dim() >= 2 and (self.mode == "full" or "lora_" in n)]
        rest = [p for n, p in named if not any(p is q for q in decay)]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]

    def trainable_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}

    def load_trainable(self, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in state]
        if missing or set(state) - set(params):
            raise ValueError(f"saved state does not match this adaptation (missing {missing[:3]})")
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor)

    # -- how it is written ----------------------------------------------------------------------
    def save_model(
        self, directory: Path, model: torch.nn.Module, tok: Tokenizer, extra_files: dict[str, str] | None = None
    ) -> Path:
        model = getattr(model, "_orig_mod", model)
        if self.mode == "full":
            from ..checkpoint import save_checkpoint

            return save_checkpoint(directory, model, tok, extra_files=extra_files)
        return save_adapter(
            directory,
            model,
            self.base,
            self.base_tokenizer,
            self.added,
            self.lora_scale,
            list(self.replaced_names),
            extra_files=extra_files,
        )
