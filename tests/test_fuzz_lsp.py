"""Fuzzing `sdls serve` through its real stdio transport (Hypothesis stateful): random sequences of
open / change / close / request / cancel / configuration messages, valid and invalid, with bad
framing and garbage between them. After every step: the process is alive, every request sent with
an id got exactly one response, the files of the workspace (and a decoy folder beside it) are
byte for byte what they were, and the server's memory stays bounded.

The model is lsp_fakes.ScriptedBackend (tests/scripted_sdls_serve.py): everything else is the real
server. Short by default (CI); the longer pass, split by seed, and its figures are in the README
(Fuzzing). Garbage never holds a `Content-Length` header: bytes that announce a
length are framing, and their own body follows them (the bad-framing cases of test_lsp_framing.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from raw_lsp import ServerProcess, frame
from test_lsp_framing import CASES as BAD_FRAMING

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("SDLS_FUZZ_EXAMPLES", "6"))
STEPS = int(os.environ.get("SDLS_FUZZ_STEPS", "25"))
RSS_LIMIT_MB = 400  # the server starts near 50 MB; a leak per message would pass this over a long run
FILES = ["a.py", "b.js", "notes.txt"]
TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80) | st.sampled_from(
    ["def f(x):\n    return \n", "if (a) {\n  b(\n", "\U0001f600 = 1\n", "x" * 3000, ""]
)
NUMBER = st.integers(-(2**40), 2**40) | st.sampled_from([0, 1, 2, -1, 2**31, 0.5, None, "1", True])
POSITION = st.fixed_dictionaries({"line": NUMBER, "character": NUMBER}) | st.sampled_from(
    [{"line": 0, "character": 0}, {"line": 1, "character": 4}, [0, 1], None, {}]
)
JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
GARBAGE = st.binary(max_size=300).filter(lambda b: b"content-length" not in b.lower())
SETTINGS = (
    st.fixed_dictionaries(
        {},
        optional={
            "completion": st.fixed_dictionaries(
                {}, optional={"enabled": st.booleans() | JSON_LEAF, "maxTokens": NUMBER, "crossFile": st.booleans()}
            ),
            "hover": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "doubt": JSON_LEAF}),
            "diagnostics": st.fixed_dictionaries({}, optional={"enabled": JSON_LEAF}),
            "languages": st.lists(st.sampled_from(["python", "javascript", "*", 3]), max_size=3) | JSON_LEAF,
            "actions": JSON,
            "nextEdit": st.fixed_dictionaries(
                {}, optional={"enabled": st.booleans(), "debounceMs": st.integers(0, 50)}
            ),
        },
    )
    | JSON
)


class LspFuzz(RuleBasedStateMachine):
    def __init__(self, server: ServerProcess, root: Path, snapshot: dict):
        super().__init__()
        self.server, self.client, self.root, self.snapshot = server, server.client, root, snapshot
        self.sent: list[object] = []  # ids of well-formed requests: each must get exactly one answer
        self.versions: dict[str, int] = {}
        self.server.fuzz_messages = getattr(self.server, "fuzz_messages", 0)

    def _uri(self, name: str) -> str:
        return (self.root / "workspace" / name).as_uri()

    def _request(self, method: str, params) -> None:
        self.sent.append(self.client.request(method, params))
        self.server.fuzz_messages += 1

    def _notify(self, method: str, params) -> None:
        self.client.notify(method, params)
        self.server.fuzz_messages += 1

    # -- documents ----------------------------------------------------------------------------
    @rule(name=st.sampled_from(FILES), text=TEXTS, version=NUMBER)
    def open(self, name, text, version):
        language = {"py": "python", "js": "javascript"}.get(name.rsplit(".", 1)[-1], "plaintext")
        doc = {"uri": self._uri(name), "languageId": language, "version": version, "text": text}
        self._notify("textDocument/didOpen", {"textDocument": doc})
        self.versions[name] = version if isinstance(version, int) else 0

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), text=TEXTS, start=POSITION, end=POSITION, backwards=st.booleans(), full=st.booleans())
    def change(self, data, text, start, end, backwards, full):
        name = data.draw(st.sampled_from(sorted(self.versions)))
        self.versions[name] += -1 if backwards else 1
        change = {"text": text} if full else {"range": {"start": start, "end": end}, "text": text}
        ident = {"uri": self._uri(name), "version": self.versions[name]}
        self._notify("textDocument/didChange", {"textDocument": ident, "contentChanges": [change]})

    @rule(name=st.sampled_from(FILES))
    def close(self, name):
        self._notify("textDocument/didClose", {"textDocument": {"uri": self._uri(name)}})
        self.versions.pop(name, None)

    # -- requests -----------------------------------------------------------------------------
    @rule(
        method=st.sampled_from(
            ["textDocument/hover", "textDocument/inlineCompletion", "textDocument/codeAction", "sdls/nextEdit"]
        ),
        name=st.sampled_from(FILES),
        position=POSITION,
        kind=st.sampled_from([1, 2, 99, None]),
        extra=st.booleans(),
    )
    def request(self, method, name, position, kind, extra):
        params: dict = {"textDocument": {"uri": self._uri(name)}, "position": position}
        if method == "textDocument/inlineCompletion" and kind is not None:
            params["context"] = {"triggerKind": kind}
        if method == "textDocument/codeAction":
            params = {"textDocument": params["textDocument"], "range": {"start": position, "end": position}}
            params["context"] = {"diagnostics": []} if extra else {}
        self._request(method, params)

    @rule(
        method=st.sampled_from(["codeAction/resolve", "workspace/executeCommand", "sdls/stats", "sdls/nope"]),
        params=JSON,
    )
    def odd_request(self, method, params):
        self._request(method, params)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def cancel(self, data):
        self._notify("$/cancelRequest", {"id": data.draw(st.sampled_from(self.sent[-5:]))})

    @rule(settings_=SETTINGS)
    def configuration(self, settings_):
        self._notify("workspace/didChangeConfiguration", {"settings": settings_})

    # -- invalid bytes ------------------------------------------------------------------------
    @rule(garbage=GARBAGE)
    def garbage(self, garbage):
        self.client.send_bytes(garbage)

    @rule(case=st.sampled_from(sorted(BAD_FRAMING)), method=st.sampled_from(["sdls/stats", "textDocument/hover"]))
    def bad_framing(self, case, method):
        """A request in bad framing: answered at most once (once where its id can be read)."""
        make, _served = BAD_FRAMING[case]
        msg_id = f"framing-{len(self.client.answers)}-{self.server.fuzz_messages}"
        self.client.send_bytes(
            make(json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": {}}).encode())
        )
        self.server.fuzz_messages += 1

    @rule(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
    def bad_body(self, body):
        self.client.send_bytes(frame(body))
        self.server.fuzz_messages += 1

    # -- after every step ---------------------------------------------------------------------
    @invariant()
    def every_request_is_answered_once_and_nothing_is_touched(self):
        for msg_id in self.sent:
            self.client.wait_for(msg_id)
        assert self.server.alive(), self.server.stderr()[-3000:]
        assert _answered_twice(self.client) == {}
        assert _snapshot(self.root) == self.snapshot
        assert _rss_mb(self.server.proc.pid) < RSS_LIMIT_MB

    def teardown(self):
        self.client.barrier()  # anything still owed arrives before this
        assert _answered_twice(self.client) == {}
        for name in FILES:
            self.client.notify("textDocument/didClose", {"textDocument": {"uri": self._uri(name)}})


def _answered_twice(client) -> dict:
    """Ids answered more than once (errors for messages without a readable id carry null: not counted)."""
    return client.duplicates()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "home" not in p.parts}


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "workspace").mkdir()
    (root / "decoy").mkdir()
    for name in FILES:
        (root / "workspace" / name).write_text(f"# {name}: what is on disk, which the server never writes\n")
    (root / "decoy" / "precious.txt").write_bytes(b"\x00not yours\n")
    (root / "home").mkdir()
    return root


def test_random_message_sequences_through_stdio(fuzz_root):
    before_repo = _git_status()
    env = {
        "HOME": str(fuzz_root / "home"),
        "XDG_RUNTIME_DIR": str(fuzz_root / "home"),
        "XDG_CONFIG_HOME": str(fuzz_root / "home"),
    }
    server = ServerProcess([sys.executable, str(REPO / "tests" / "scripted_sdls_serve.py")], env=env, cwd=fuzz_root)
    try:
        server.client.initialize({"worker": {"spawn": False}}, root=fuzz_root / "workspace")
        snapshot = _snapshot(fuzz_root)
        run_state_machine_as_test(
            lambda: LspFuzz(server, fuzz_root, snapshot),
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                suppress_health_check=list(HealthCheck),
                deadline=None,
                **({"phases": [Phase.explicit, Phase.generate]} if os.environ.get("SDLS_FUZZ_NO_SHRINK") else {}),
            ),
        )
        sent = server.fuzz_messages
        answers = server.client.all_answers()
        codes = Counter(m["error"]["code"] if "error" in m else "result" for m in answers)
        internal = [m["error"]["message"] for m in answers if "error" in m and m["error"]["code"] == -32603]
        print(
            f"fuzz: {EXAMPLES} sequences, {sent} messages, answers {dict(codes)}, rss {_rss_mb(server.proc.pid):.0f} MB"
        )
        assert internal == []  # an internal error is a handler that crashed on its input
        assert server.alive()
    finally:
        server.close()
    assert _git_status() == before_repo
