"""Low-rank adapters (LoRA, Hu et al. 2021) on the transformer's linear layers, and their merge.

A `LoRALinear` keeps the pretrained layer frozen and adds `scale * B @ A` to its weight, with A
random and B zero, so an adapted model starts exactly as the backbone. Training updates A and B
(plus whatever the caller leaves trainable); `merge_lora` folds them back into plain `nn.Linear`
layers, so the engine, its fast path and every checkpoint tool see an ordinary Transformer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, seed: int = 0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        gen = torch.Generator().manual_seed(seed)
        a = torch.randn(rank, base.in_features, generator=gen) / math.sqrt(base.in_features)
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_a = nn.Parameter(a.to(device=device, dtype=dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=dtype))

    @property
    def weight(self) -> torch.Tensor:  # what readers of `.weight` (fused paths) would need
        return self.merged_weight()

    def merged_weight(self) -> torch.Tensor:
        delta = (self.lora_b.float() @ self.lora_a.float()) * self.scale
        return (self.base.weight.float() + delta).to(self.base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t()) @ self.lora_b.t() * self.scale


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def add_lora(
    model: nn.Module, rank: int, alpha: float | None = None, targets=DEFAULT_TARGETS, seed: int = 0
) -> nn.Module:
    """Wrap every linear layer whose attribute name is in `targets` (in place); returns the model."""
    alpha = float(2 * rank if alpha is None else alpha)
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if name in targets and isinstance(child, nn.Linear)
    ]
    if not found:
        raise ValueError(f"no linear layers named {', '.join(targets)} to adapt")
    for i, (parent, name, child) in enumerate(found):
        setattr(parent, name, LoRALinear(child, rank, alpha, seed=seed * 100003 + i))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace each LoRALinear by a plain nn.Linear holding base + scale * B @ A (in place)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                merged = nn.Linear(child.base.in_features, child.base.out_features, bias=child.base.bias is not None)
                merged = merged.to(device=child.base.weight.device, dtype=child.base.weight.dtype)
                with torch.no_grad():
                    merged.weight.copy_(child.merged_weight())
                    if child.base.bias is not None:
                        merged.bias.copy_(child.base.bias)
                setattr(parent, name, merged)
    return model


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' A and B by '<layer>.lora_a' / '<layer>.lora_b' (layer: the wrapped linear's name)."""
    out = {}
    for name, m in lora_modules(model).items():
        out[f"{name}.lora_a"] = m.lora_a.detach()
        out[f"{name}.lora_b"] = m.lora_b.detach()
    return out


def merge_into_state(
    state: dict[str, torch.Tensor], adapters: dict[str, torch.Tensor], scale: float
) -> dict[str, torch.Tensor]:
    """Add scale * B @ A of each stored adapter to the matching '<layer>.weight' of a state dict."""
    layers = {k.rsplit(".", 1)[0] for k in adapters}
    for layer in sorted(layers):
        a, b, key = adapters.get(f"{layer}.lora_a"), adapters.get(f"{layer}.lora_b"), f"{layer}.weight"
        if a is None or b is None:
            raise ValueError(f"adapter {layer!r} lacks its lora_a or lora_b")
        if key not in state:
            raise ValueError(f"adapter {layer!r} has no weight {key!r} to apply to")
        w = state[key]
        if tuple(b.shape) != (w.shape[0], a.shape[0]) or a.shape[1] != w.shape[1]:
            raise ValueError(
                f"adapter {layer!r}: A {list(a.shape)} and B {list(b.shape)} do not fit weight {list(w.shape)}"
            )
        state[key] = (w.float() + (b.float() @ a.float()) * scale).to(w.dtype)
    return state
