"""sdls_model: the diffusion model, its checkpoints, sampling rules, decoding engine and training.

Lives in model/sdls_model/. Never imports `sdls` (the LSP layer).
"""

if __name__ != "sdls_model":  # e.g. `model.sdls_model` from the repository root: a second copy of every class
    raise ImportError(f"import sdls_model, not {__name__}: one file, one module name")

from .config import ModelConfig

__all__ = ["ModelConfig"]
