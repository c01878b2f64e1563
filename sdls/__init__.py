"""sdls: the language server that brings diffusion code models into the editor."""

__version__ = "0.1.0"
