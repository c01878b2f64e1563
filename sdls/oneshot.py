"""What the one-shot commands (`sdls complete`, `sdls fix`) share: arguments, loading a file, the backend,
printing the answer.

They make the same core calls with the same settings defaults as `sdls serve`; only the backend
differs: the engine runs in this process unless --worker asks for the shared worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from sdls.lsp.documents import DocumentStore, OpenDocument, looks_binary
from sdls.lsp.settings import Settings, settings_from
from sdls.syntax import language_for
from sdls_model.precision import add_dtype_argument


class OneShotError(Exception):
    """A bad file, position or model: printed as `sdls: ...`, exit status 2."""


def add_arguments_for(parser: argparse.ArgumentParser, *, column: bool) -> None:
    """FILE --line L [--col C] and the model options (both commands take the same)."""
    parser.add_argument("file")
    parser.add_argument("--line", type=int, required=True, help="0-based line")
    if column:
        parser.add_argument("--col", type=int, required=True, help="0-based UTF-16 column (as in LSP)")
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    add_dtype_argument(parser)
    parser.add_argument("--worker", action="store_true", help="use (or start) the shared model worker")
    parser.add_argument("--language", default=None, help="language id (default: from the file name)")
    parser.add_argument("--json", action="store_true")


def load_document(path: str, language: str | None, settings: Settings) -> OpenDocument:
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise OneShotError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OneShotError(f"{path} is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})") from None
    if looks_binary(text):
        raise OneShotError(f"{path} looks like a binary file (it contains NUL bytes)")
    store = DocumentStore(settings.max_document_chars)
    return store.open(file.resolve().as_uri(), language or language_for(str(file)) or "plaintext", 1, text)


def one_shot_settings(args: argparse.Namespace) -> Settings:
    settings, _ = settings_from(
        {
            "model": {"path": args.model, "device": args.device, "dtype": args.dtype},
            "worker": {"inProcess": not args.worker},
        }
    )
    return settings


@asynccontextmanager
async def model_backend(settings: Settings):
    """The backend the settings ask for, closed afterwards; a model that cannot be loaded (now or
    by the worker mid-call) becomes a OneShotError."""
    from sdls.lsp.backends import open_backend
    from sdls.worker.client import WorkerError

    try:
        backend = await open_backend(settings)
    except WorkerError as exc:
        raise OneShotError(f"cannot load the model: {exc}") from None
    try:
        yield backend
    except WorkerError as exc:
        raise OneShotError(f"cannot load the model: {exc}") from None
    finally:
        await backend.close()


def run_one_shot(compute, args: argparse.Namespace, show) -> int:
    """Run `compute(args)`; print its dict as JSON (--json) or `show(out)` -> (text, ok) as text
    (stdout when ok, else stderr). Exit status: 0 ok, 1 nothing to offer, 2 bad input or model."""
    try:
        out = asyncio.run(compute(args))
    except OneShotError as exc:
        print(f"sdls: {exc}", file=sys.stderr)
        return 2
    text, ok = show(out)
    if args.json:
        print(json.dumps(out))
    else:
        print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cross_file_header(doc: OpenDocument, settings: Settings) -> str:
    from sdls.lsp.prompt import declarations_header
    from sdls.lsp.workspace_index import DeclarationIndex

    path = Path(doc.uri.removeprefix("file://"))
    files = DeclarationIndex([path.parent]).context_for(doc.text, path, doc.language)
    return declarations_header(doc.language, files, settings.completion.prefix_chars // 3)
