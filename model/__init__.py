"""sdls_model: the diffusion model, its checkpoints, sampling rules, decoding engine and training.

Imported as `sdls_model` (the folder is model/). Never imports `sdls` (the LSP layer).
"""
from .config import ModelConfig

__all__ = ["ModelConfig"]
