"""Which model the editor end-to-end tests run on.

Ghost text and code-action edits need a model that writes code: SDLS_EDITOR_TEST_MODEL if set, else
the shipped model (model/default). None when neither exists; the tests then say so and skip.
"""
from __future__ import annotations

import os
from pathlib import Path


def trained_model() -> Path | None:
    given = os.environ.get("SDLS_EDITOR_TEST_MODEL")
    if given:
        return Path(given)
    from sdls_model.checkpoint import default_model_dir
    shipped = default_model_dir()
    return shipped if (shipped / "config.json").exists() else None
