"""Next-edit suggestions through the real server (`sdls serve` over stdio, pytest-lsp as the client):
Copilot's textDocument/copilotInlineEdit as copilot-lsp and sidekick send it, sdls/nextEdit, the
shown notifications and the accept/reject commands, and bad input.

The rules-only server (nextEdit.model off) gives exact answers; the server on a tiny random-weight
checkpoint checks the model path's wiring and its discipline (never null, never the typed text,
never a change that adds a syntax error)."""

from __future__ import annotations

import pytest
import pytest_asyncio
from fixtures_checkpoints import write_sdls
from lsp_harness import open_doc, sdls_session, stats
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from sdls.syntax import SyntaxDocument, syntax_errors

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]
SRC = "def area(width, height):\n    w = width * 2\n    return w * height + width\n"


class Editor:
    """Keeps the client's copy of each document and its version, as an editor does."""

    def __init__(self, client):
        self.client, self.texts, self.versions = client, {}, {}

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.texts[uri], self.versions[uri] = text, 1
        open_doc(self.client, uri, text, language)

    def change(self, uri: str, start: int, end: int, new: str) -> int:
        text = self.texts[uri]
        rng = lsp.Range(self._pos(text, start), self._pos(text, end))
        self.texts[uri] = text[:start] + new + text[end:]
        self.versions[uri] += 1
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                [lsp.TextDocumentContentChangePartial(range=rng, text=new)],
            )
        )
        return self.versions[uri]

    @staticmethod
    def _pos(text: str, offset: int) -> lsp.Position:
        line = text.count("\n", 0, offset)
        return lsp.Position(line, offset - (text.rfind("\n", 0, offset) + 1))

    def offset(self, uri: str, pos: dict) -> int:
        lines = self.texts[uri].split("\n")
        return sum(len(x) + 1 for x in lines[: pos["line"]]) + pos["character"]

    def rename(self, uri: str, old: str, new: str) -> None:
        at = self.texts[uri].index(old)
        self.change(uri, at, at + len(old), "")
        for k, ch in enumerate(new):
            self.change(uri, at + k, at + k, ch)

    def apply(self, uri: str, edit: dict) -> None:
        rng = edit["range"]
        self.change(uri, self.offset(uri, rng["start"]), self.offset(uri, rng["end"]), edit["text"])

    async def ask(self, uri: str, method: str = "textDocument/copilotInlineEdit", version="current", **extra):
        params = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}, **extra}
        if version is not None:
            params["textDocument"]["version"] = self.versions[uri] if version == "current" else version
        return await self.client.protocol.send_request_async(method, params)


def as_dict(value):
    if hasattr(value, "_asdict"):
        return {k: as_dict(v) for k, v in value._asdict().items()}
    if isinstance(value, list):
        return [as_dict(v) for v in value]
    return value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rules():
    async with sdls_session(None, {"nextEdit": {"model": False, "debounceMs": 0}}) as c:
        yield Editor(c)


async def test_initialize_advertises_next_edits_to_clients_that_look(rules):
    caps = rules.client.init_result.capabilities
    assert caps.experimental["sdls"]["nextEdit"]["requests"] == ["sdls/nextEdit", "textDocument/copilotInlineEdit"]
    commands = caps.execute_command_provider.commands
    assert {"sdls.acceptNextEdit", "sdls.rejectNextEdit"} <= set(commands)  # Neovim sends only listed ones


async def test_copilot_inline_edit_proposes_the_next_use_of_a_renamed_parameter(rules):
    uri = "file:///nes/rename.py"
    rules.open(uri, SRC)
    rules.rename(uri, "width", "size")
    got = as_dict(await rules.ask(uri, context={"triggerKind": 2}))  # as sidekick sends it
    (edit,) = got["edits"]
    assert edit["text"] == "size"
    assert edit["range"] == {"start": {"line": 1, "character": 8}, "end": {"line": 1, "character": 13}}
    assert edit["textDocument"] == {"uri": uri, "version": rules.versions[uri]}
    assert edit["command"]["command"] == "sdls.acceptNextEdit"
    assert edit["command"]["arguments"] == [edit["id"]] and (edit["source"], edit["rule"]) == ("rule", "rename")


async def test_shown_accepted_and_the_chain_to_the_next_use(rules):
    uri = "file:///nes/chain.py"
    rules.open(uri, SRC)
    rules.rename(uri, "width", "size")
    (edit,) = as_dict(await rules.ask(uri))["edits"]  # as copilot-lsp sends it: no context
    rules.client.protocol.notify("textDocument/didShowInlineEdit", {"item": {"command": edit["command"]}})
    rules.apply(uri, edit)  # the editor applies it, then runs the item's command
    done = await rules.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="sdls.acceptNextEdit", arguments=[edit["id"]])
    )
    assert as_dict(done) == {"accepted": True, "id": edit["id"]}
    (nxt,) = as_dict(await rules.ask(uri, method="sdls/nextEdit"))["edits"]
    assert nxt["text"] == "size" and nxt["range"]["start"]["line"] == 2
    rules.apply(uri, nxt)
    assert rules.texts[uri] == SRC.replace("width", "size")
    counters = as_dict((await stats(rules.client)).next_edit)["counters"]
    assert counters["shown"] >= 1 and counters["accepted"] >= 1


async def test_no_suggestion_is_an_empty_list_never_null(rules):
    uri = "file:///nes/empty.py"
    rules.open(uri, SRC)
    got = as_dict(await rules.ask(uri))
    assert got["edits"] == [] and "no edit" in got["reason"]
    rules.rename(uri, "width", "size")
    stale = as_dict(await rules.ask(uri, version=rules.versions[uri] - 1))  # the client is behind
    assert stale["edits"] == [] and "version" in stale["reason"]


async def test_a_rejected_suggestion_is_not_offered_again(rules):
    uri = "file:///nes/reject.py"
    rules.open(uri, SRC)
    rules.rename(uri, "width", "size")
    (first,) = as_dict(await rules.ask(uri))["edits"]
    done = await rules.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="sdls.rejectNextEdit", arguments=[first["id"]])
    )
    assert as_dict(done)["rejected"] is True
    (second,) = as_dict(await rules.ask(uri))["edits"]
    assert second["range"]["start"]["line"] == 2  # the other use, not the dismissed one


async def test_bad_requests_get_invalid_params_and_bad_notifications_nothing(rules):
    uri = "file:///nes/bad.py"
    rules.open(uri, SRC)
    for params in ({"position": {"line": 0, "character": 0}}, {"textDocument": {"uri": uri}}, [1, 2]):
        with pytest.raises(JsonRpcException) as info:
            await rules.client.protocol.send_request_async("textDocument/copilotInlineEdit", params)
        assert info.value.code == -32602
    with pytest.raises(JsonRpcException) as info:
        await rules.ask("file:///nes/never-opened.py", version=None)
    assert info.value.code == -32602 and "not open" in info.value.message
    with pytest.raises(JsonRpcException) as info:
        await rules.ask(uri, position={"line": 99, "character": 0})
    assert info.value.code == -32602
    for args in ([], [1], ["a", "b"]):
        with pytest.raises(JsonRpcException) as info:
            await rules.client.workspace_execute_command_async(
                lsp.ExecuteCommandParams(command="sdls.acceptNextEdit", arguments=args)
            )
        assert info.value.code == -32602
    unknown = await rules.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="sdls.acceptNextEdit", arguments=["nes-gone"])
    )
    assert as_dict(unknown)["accepted"] is False
    for junk in ({"item": []}, {"item": {"command": None}}, {"id": 5}, {}):
        rules.client.protocol.notify("textDocument/didShowInlineEdit", junk)
        rules.client.protocol.notify("sdls/didShowNextEdit", junk)
    assert as_dict(await rules.ask(uri))["edits"] == []  # still answering


async def test_binary_and_plain_text_documents_get_no_suggestion(rules):
    for uri, text, language in (
        ("file:///nes/blob.py", "\x00\x01\x02" + SRC, "python"),
        ("file:///nes/notes.txt", "width and height\nwidth\n", "plaintext"),
    ):
        rules.open(uri, text, language)
        rules.rename(uri, "width", "size")
        got = as_dict(await rules.ask(uri))
        assert got["edits"] == [] and got["reason"]


async def test_a_renamed_function_is_renamed_next_in_an_open_file_that_imports_it(tmp_path):
    root = tmp_path.resolve()
    (root / "geometry.py").write_text(SRC)
    (root / "main.py").write_text("from geometry import area\n\nprint(area(1, 2))\n")
    async with sdls_session(None, {"nextEdit": {"model": False, "debounceMs": 0}}, root=root) as c:
        ed = Editor(c)
        lib, main = (root / "geometry.py").as_uri(), (root / "main.py").as_uri()
        ed.open(lib, SRC)
        ed.open(main, (root / "main.py").read_text())
        ed.rename(lib, "area", "surface")
        copilot = as_dict(await ed.ask(lib))  # Copilot's clients show an answer in the asking buffer
        assert copilot["edits"] == [] and main in copilot["reason"]
        (edit,) = as_dict(await ed.ask(lib, method="sdls/nextEdit"))["edits"]
        assert edit["textDocument"] == {"uri": main, "version": ed.versions[main]}  # the other file, its version
        assert (edit["text"], edit["rule"]) == ("surface", "workspace-rename")
        assert edit["range"] == {"start": {"line": 0, "character": 21}, "end": {"line": 0, "character": 25}}
        ed.apply(main, edit)  # the editor opens main.py and applies it there
        (nxt,) = as_dict(await ed.ask(main, method="sdls/nextEdit"))["edits"]  # asked from main.py now
        assert nxt["textDocument"]["uri"] == main and nxt["range"]["start"]["line"] == 2
        ed.apply(main, nxt)
        assert ed.texts[main] == "from geometry import surface\n\nprint(surface(1, 2))\n"
        assert as_dict(await ed.ask(main, method="sdls/nextEdit"))["edits"] == []


# -- the model path, on random weights: wiring and discipline ------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    write_sdls(path)
    return path


async def test_the_model_path_answers_with_an_edit_that_parses_and_spares_the_typed_text(model_dir):
    # rewriteRules: the model ranks and re-checks the rename's proposals (by default they stand unasked)
    options = {"nextEdit": {"debounceMs": 0, "rewriteRules": True}, "worker": {"inProcess": True}}
    async with sdls_session(model_dir, options) as c:
        ed = Editor(c)
        uri = "file:///nes/model.py"
        ed.open(uri, SRC)
        ed.rename(uri, "width", "size")
        got = as_dict(await ed.ask(uri))
        assert isinstance(got["edits"], list) and len(got["edits"]) <= 1
        for edit in got["edits"]:
            start, end = ed.offset(uri, edit["range"]["start"]), ed.offset(uri, edit["range"]["end"])
            assert end <= 9 or start >= 13  # "size" sits at 9..13: never touched
            after = ed.texts[uri][:start] + edit["text"] + ed.texts[uri][end:]
            assert len(syntax_errors(SyntaxDocument(after, "python"))) == 0
            assert edit["source"] in ("model", "rule+model", "model-over-rule", "rule")
        records = as_dict((await stats(c)).next_edit)["records"]
        assert records and records[-1]["doubt_calls"] >= 1  # the model was asked


async def test_by_default_a_rules_proposal_is_served_without_a_model_pass(model_dir):
    options = {"nextEdit": {"debounceMs": 0}, "worker": {"inProcess": True}}
    async with sdls_session(model_dir, options) as c:
        ed = Editor(c)
        uri = "file:///nes/rule.py"
        ed.open(uri, SRC)
        ed.rename(uri, "width", "size")
        (edit,) = as_dict(await ed.ask(uri))["edits"]
        assert (edit["source"], edit["text"]) == ("rule", "size")
        record = as_dict((await stats(c)).next_edit)["records"][-1]
        assert record["doubt_calls"] == 0 and record["forwards"] == 0 and record["jobs"] == 0
