"""End to end: a real LSP client (pytest-lsp) over stdio -> `sdls serve` -> a spawned `sdls worker`
running the real engine on a tiny random-weight checkpoint.

Random weights write nonsense, so these tests check the plumbing and the protocol discipline
(what runs, what is cancelled, which version an edit is bound to), with syntax validation of
actions switched off. One server and one worker are shared by the whole module.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import pytest
import pytest_asyncio
from editor_models import find_offer
from lsp_harness import (
    change_doc,
    configure,
    inline,
    open_doc,
    sdls_session,
    send_inline,
    stats,
    wait_for_diagnostics,
)
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from waiting import SAFETY_S, eventually_async

from sdls.syntax import SyntaxDocument, syntax_errors

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]
SOURCE = "def add(a, b):\n    return \n\n\ndef area(r):\n    pass\n\n\nprint(add(1, 2)\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tiny_model_dir):
    async with sdls_session(tiny_model_dir, {"actions": {"validate": False}, "hover": {"doubt": False}}) as c:
        open_doc(c, "file:///e2e/warm.py", "def warm(x):\n    return \n")
        await inline(c, "file:///e2e/warm.py", 1, 11)  # every test starts with the worker up
        yield c


def engine_running(client):
    async def running():
        return (await stats(client)).worker.running

    return running


def cancelled_since(client, before: dict):
    async def after():
        now = await counters(client)
        return now if now["cancelled"] > before["cancelled"] else None

    return after


async def counters(client) -> dict:
    s = await stats(client)
    lanes = s.worker.lanes if s.worker else None
    return {
        "inline_jobs": lanes.inline.jobs if lanes else 0,
        "cancelled": lanes.inline.cancelled if lanes else 0,
        "wasted": lanes.inline.forwards_wasted if lanes else 0,
        "rewrite_jobs": lanes.rewrite.jobs if lanes else 0,
    }


async def test_initialize_advertises_the_features(client):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.code_action_provider.resolve_provider is True
    assert set(caps.code_action_provider.code_action_kinds) == {"refactor.rewrite", "quickfix"}
    assert caps.hover_provider and "sdls.applyFix" in caps.execute_command_provider.commands
    assert caps.text_document_sync.change == lsp.TextDocumentSyncKind.Incremental


async def test_syntax_errors_become_diagnostics(client):
    open_doc(client, "file:///e2e/diag.py", SOURCE)
    diags = await wait_for_diagnostics(client, "file:///e2e/diag.py")
    assert [d.range.start.line for d in diags] == [8] and diags[0].source == "sdls"


async def test_inline_completion_runs_the_model_and_only_offers_text_that_parses(client, tiny_model_dir):
    # Where the tiny model offers text (found in this process through the same core call), the
    # server must offer it too: random weights offer nothing at most places, so the place is looked up.
    offer, why = await asyncio.to_thread(find_offer, tiny_model_dir)
    assert offer is not None, why
    lines = offer.text.split("\n")
    lines[offer.row] += offer.typed
    typed_text, col = "\n".join(lines), offer.indent + len(offer.typed)
    errors_before = len(syntax_errors(SyntaxDocument(typed_text, "python")))
    uri = "file:///e2e/inline.py"
    open_doc(client, uri, typed_text)
    before = await counters(client)
    result = await inline(client, uri, offer.row, col, invoked=False)
    after = await counters(client)
    assert after["inline_jobs"] == before["inline_jobs"] + 1  # the worker ran the job
    assert isinstance(result, lsp.InlineCompletionList) and result.items, result
    for item in result.items:  # whatever is offered parses
        line = lines[offer.row]
        start, end = item.range.start.character, item.range.end.character
        offered = lines[: offer.row] + [line[:start] + item.insert_text + line[end:]] + lines[offer.row + 1 :]
        assert len(syntax_errors(SyntaxDocument("\n".join(offered), "python"))) <= errors_before, item
    # Same prompt again: answered from the cache, no model call.
    await inline(client, uri, offer.row, col, invoked=False)
    assert (await counters(client))["inline_jobs"] == after["inline_jobs"]


async def test_cancel_request_stops_the_job_in_the_worker(client):
    uri = "file:///e2e/cancel.py"
    open_doc(client, uri, "def f(x):\n    y = \n")
    await configure(client, {"completion": {"maxTokens": 512}})  # the engine's longest job
    try:
        before = await counters(client)
        future = send_inline(client, uri, 1, 8, msg_id="cancel-me")
        await eventually_async(engine_running(client), "the worker to start the job")
        client.cancel_request(lsp.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(future, SAFETY_S)
        assert err.value.code == lsp.LSPErrorCodes.RequestCancelled
        after = await eventually_async(cancelled_since(client, before), "the worker to count the cancelled job")
        assert after["cancelled"] == before["cancelled"] + 1
        # The worker stopped it part way: some steps were spent, fewer than the full job takes.
        assert 0 < after["wasted"] - before["wasted"] < 512
    finally:
        await configure(client, {"completion": {"maxTokens": 32}})


async def test_newer_request_for_the_same_document_supersedes_the_older(client):
    uri = "file:///e2e/supersede.py"
    open_doc(client, uri, "def f(x):\n    y = \n    z = \n")
    await configure(client, {"completion": {"debounceMs": 60_000}})  # the older request waits in the server
    try:
        # The server handles messages in the order they are written: the older request starts its
        # wait before the settings change, and the newer one arrives while it waits.
        old = send_inline(client, uri, 1, 8)
        await configure(client, {"completion": {"debounceMs": 0}})
        new = send_inline(client, uri, 2, 8)
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(old, SAFETY_S)
        assert err.value.code == lsp.LSPErrorCodes.ServerCancelled and "superseded" in err.value.message
        assert isinstance(await asyncio.wait_for(new, SAFETY_S), lsp.InlineCompletionList)
    finally:
        await configure(client, {"completion": {"debounceMs": 0}})


async def test_result_for_an_outdated_version_is_dropped(client):
    uri = "file:///e2e/stale.py"
    open_doc(client, uri, "def f(x):\n    y = \n")
    await configure(client, {"completion": {"debounceMs": 2000}})
    try:
        pending = send_inline(client, uri, 1, 8)
        change_doc(client, uri, 2, 0, 0, "# edited\n")  # typed while the request is pending
        # Whether the change is read with the request (refused as the handler starts, see
        # test_lsp_arrival.py) or during its debounce (refused when the result is ready): the same answer.
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(pending, SAFETY_S)
        assert err.value.code == lsp.LSPErrorCodes.ContentModified
    finally:
        await configure(client, {"completion": {"debounceMs": 0}})


async def test_code_action_resolves_to_an_edit_bound_to_its_version(client):
    uri = "file:///e2e/actions.py"
    open_doc(client, uri, SOURCE, version=7)
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri),
            lsp.Range(lsp.Position(5, 4), lsp.Position(5, 8)),
            lsp.CodeActionContext(diagnostics=[]),
        )
    )
    titles = [a.title for a in actions]
    assert "Rewrite selection" in titles and "Fill in stub" in titles and "Regenerate body of area" in titles
    assert all(a.edit is None for a in actions)  # computed lazily, on resolve
    rewrite = next(a for a in actions if a.title == "Rewrite selection")
    before = (await counters(client))["rewrite_jobs"]
    resolved = await client.code_action_resolve_async(rewrite)
    change = resolved.edit.document_changes[0]
    assert change.text_document.uri == uri and change.text_document.version == 7
    assert all(e.range.start.line == 5 for e in change.edits)
    assert (await counters(client))["rewrite_jobs"] == before + 1  # the rewrite lane ran it
    # After an edit, the old action is refused instead of producing an edit for the wrong text.
    change_doc(client, uri, 8, 0, 0, "# new first line\n")
    stale = next(a for a in actions if a.title == "Fill in stub")
    with pytest.raises(JsonRpcException) as err:
        await client.code_action_resolve_async(stale)
    assert err.value.code == lsp.LSPErrorCodes.ContentModified


async def test_fill_stubs_reports_progress(client):
    uri = "file:///e2e/progress.py"
    open_doc(client, uri, "class Shape:\n    ...\n\nclass Circle(Shape):\n    pass\n")
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri),
            lsp.Range(lsp.Position(1, 4), lsp.Position(1, 4)),
            lsp.CodeActionContext(diagnostics=[]),
        )
    )
    fill = next(a for a in actions if a.title == "Fill in 2 stubs")
    seen = set(client.progress_reports)
    try:
        await client.code_action_resolve_async(fill)
    except JsonRpcException as exc:  # random weights may leave nothing usable; progress still ran
        assert exc.code == lsp.LSPErrorCodes.RequestFailed
    new_tokens = set(client.progress_reports) - seen
    assert new_tokens
    kinds = [p.kind for t in new_tokens for p in client.progress_reports[t]]
    messages = [getattr(p, "message", "") for t in new_tokens for p in client.progress_reports[t]]
    assert kinds and kinds[0] == "begin" and kinds[-1] == "end", kinds
    assert "wave 1/2: 1 stub(s)" in messages and "wave 2/2: 1 stub(s)" in messages


async def test_stubs_of_one_wave_are_decoded_in_one_batch(client):
    uri = "file:///e2e/batch.py"
    open_doc(client, uri, "def a(x):\n    pass\n\n\ndef b(y):\n    pass\n")
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri),
            lsp.Range(lsp.Position(1, 4), lsp.Position(1, 4)),
            lsp.CodeActionContext(diagnostics=[]),
        )
    )
    fill = next(a for a in actions if a.title == "Fill in 2 stubs")
    await inline(client, uri, 1, 8)  # the worker is up even when this test runs alone
    before = (await stats(client)).worker.lanes.rewrite
    try:
        await client.code_action_resolve_async(fill)
    except JsonRpcException as exc:  # random weights may leave nothing usable
        assert exc.code == lsp.LSPErrorCodes.RequestFailed
    after = (await stats(client)).worker.lanes.rewrite
    assert after.jobs == before.jobs + 2 and after.batches == before.batches + 1  # one engine.run, two jobs
    assert after.batched_jobs == before.batched_jobs + 2


async def test_hover_fixup_shows_a_diff_and_its_command_applies_the_same_edit(client):
    uri = "file:///e2e/hover.py"
    open_doc(client, uri, SOURCE, version=3)
    hover = await client.text_document_hover_async(lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(8, 6)))
    text = hover.contents.value
    assert "syntax error" in text and "```diff" in text and hover.range.start.line == 8
    link = text[text.index("(command:sdls.applyFix?") + len("(command:sdls.applyFix?") :]
    args = json.loads(urllib.parse.unquote(link[: link.index(" ")]))
    assert args[0]["uri"] == uri and args[0]["version"] == 3
    result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams("sdls.applyFix", args))
    assert result == {"applied": True}
    applied = client.applied_edits[-1].edit.document_changes[0]
    assert applied.text_document.version == 3
    assert [(e.range.start.line, e.new_text) for e in applied.edits] == [
        (e["range"]["start"]["line"], e["newText"]) for e in args[0]["edits"]
    ]
    # Once the document moved on, the same command is refused.
    change_doc(client, uri, 4, 0, 0, "\n")
    with pytest.raises(JsonRpcException) as err:
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams("sdls.applyFix", args))
    assert err.value.code == lsp.LSPErrorCodes.ContentModified


async def test_every_request_got_exactly_one_response(client):
    # Every request this module's client sent (module-scoped: all tests above) was answered once.
    await stats(client)
    assert len(client.sent_ids) >= 3  # initialize, the warm-up completion and the stats above at least
    assert {msg_id: n for msg_id in client.sent_ids if (n := client.responses[msg_id]) != 1} == {}


async def test_one_shot_complete_gives_what_the_server_gives(client, tiny_model_dir, tmp_path, capsys):
    from sdls.cli import main

    path = tmp_path / "same.py"
    text = "def scale(v, k):\n    return \n"
    path.write_text(text)
    open_doc(client, path.as_uri(), text)
    served = await inline(client, path.as_uri(), 1, 11)
    record = (await stats(client)).latencies[-1]
    argv = ["complete", str(path), "--line", "1", "--col", "11", "--model", str(tiny_model_dir), "--json"]
    assert await asyncio.to_thread(main, argv) == 0  # its own event loop, in a thread
    one_shot = json.loads(capsys.readouterr().out)
    assert one_shot["forwards"] == record.forwards > 0
    assert one_shot["text"] == (served.items[0].insert_text if served.items else "")


async def test_code_actions_honour_the_only_filter(client):
    uri = "file:///e2e/only.py"
    open_doc(client, uri, SOURCE)
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri),
            lsp.Range(lsp.Position(8, 0), lsp.Position(8, 10)),
            lsp.CodeActionContext(diagnostics=[], only=[lsp.CodeActionKind.QuickFix]),
        )
    )
    assert actions and {a.kind for a in actions} == {"quickfix"}


async def test_quickfix_names_the_diagnostic_it_fixes(client):
    uri = "file:///e2e/quickfix.py"
    open_doc(client, uri, SOURCE)
    diagnostic = (await wait_for_diagnostics(client, uri))[0]
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri), diagnostic.range, lsp.CodeActionContext(diagnostics=[diagnostic])
        )
    )
    fix = next(a for a in actions if a.kind == "quickfix")
    assert fix.diagnostics == (diagnostic,) and fix.is_preferred


async def test_the_server_process_stays_light(client):
    # The model lives in the worker: the server never imports torch (about 45 MB instead of ~300).
    s = await stats(client)
    assert s.heavy_modules == [] and s.rss_mb < 150
