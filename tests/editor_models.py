"""Which model the editor end-to-end tests run on.

The real-model tests run on SDLS_EDITOR_TEST_MODEL if set, else the shipped model (model/sdls_model/default);
they type where that model offers a completion (`find_offer`), so the editor is checked against the
model's own output whatever its quality.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


def trained_model() -> Path | None:
    given = os.environ.get("SDLS_EDITOR_TEST_MODEL")
    if given:
        return Path(given)
    from sdls_model.checkpoint import default_model_dir

    shipped = default_model_dir()
    return shipped if (shipped / "config.json").exists() else None


@dataclass
class Offer:
    """Where the model offers ghost text in a real file: open `text` (line `row` holds only its
    indentation), type `typed` at the end of that line, and the model's answer is `completion`."""

    text: str
    row: int
    indent: int
    typed: str
    completion: str


def find_offer(model: Path, source: Path | None = None, tries: int = 40) -> tuple[Offer | None, str]:
    """The first place in `source` (default: the standard library's argparse.py) where `model` offers a
    completion, asked through the server's own core call (`complete_at`, automatic trigger), in this
    process: (offer, "") or (None, why not). A weak model offers nothing at most places; the editor
    tests then still check the editor against what it does offer."""
    import asyncio
    import sysconfig

    source = source or Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"
    text = source.read_text(encoding="utf-8")
    return asyncio.run(_probe(model, text, tries))


async def _probe(model: Path, text: str, tries: int) -> tuple[Offer | None, str]:
    from sdls.lsp.bench_lsp import pick_lines
    from sdls.lsp.completion import complete_at
    from sdls.lsp.completion_cache import CompletionCache
    from sdls.lsp.documents import DocumentStore
    from sdls.lsp.model_call import ModelCall
    from sdls.lsp.settings import settings_from
    from sdls.oneshot import model_backend

    settings, _ = settings_from({"model": {"path": str(model)}, "worker": {"inProcess": True}})
    lines = text.split("\n")
    reasons: dict[str, int] = {}
    async with model_backend(settings) as backend:
        for k, row in enumerate(pick_lines(text, tries)):
            line = lines[row]
            indent = len(line) - len(line.lstrip())
            body = line[indent:]
            first_word = re.match(r"[\w.]+ ?", body)  # what a user types before pausing: "return "
            typed = first_word.group(0) if first_word and len(first_word.group(0)) >= 2 else body[:2]
            state = "\n".join(lines[:row] + [line[:indent] + typed] + lines[row + 1 :])
            doc = DocumentStore(settings.max_document_chars).open(f"file:///probe{k}.py", "python", 1, state)
            outcome = await complete_at(
                doc,
                doc.offset(row, indent + len(typed)),
                ModelCall.from_settings(settings, backend),
                cache=CompletionCache(),
            )
            if outcome.result is not None and outcome.result.text.strip():
                opened = "\n".join(lines[:row] + [line[:indent]] + lines[row + 1 :])
                return Offer(opened, row, indent, typed, outcome.result.text), ""
            reasons[outcome.reason] = reasons.get(outcome.reason, 0) + 1
    said = "; ".join(f"{n} x {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return None, f"{model} offers no completion at {sum(reasons.values())} probed places ({said})"
