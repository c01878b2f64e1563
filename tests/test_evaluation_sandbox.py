"""The sandbox that runs model output: it must pass correct programs and contain everything else."""

from __future__ import annotations

import socket
import textwrap

import pytest

from sdls.evaluation.sandbox import Limits, network_namespace_prefix, run_program, run_programs

FAST = Limits(seconds=5.0, memory_mb=512)


def check(source: str, status: str, limits: Limits = FAST, detail: str = "", **kwargs):
    outcome = run_program(textwrap.dedent(source), limits, **kwargs)
    assert outcome.status == status, outcome
    assert detail in outcome.detail, outcome
    return outcome


def test_verdicts_of_ordinary_programs():
    sources = [
        "x = 1\nassert x == 1\n",
        "assert 1 == 2, 'wrong'\n",
        "def f(:\n",
        "import sys\nsys.exit(0)\n",
        "import os\nos._exit(0)\n",
        "import os\nprint('SDLS-PASSED-0000', flush=True)\nos._exit(0)\n",
    ]
    outcomes = run_programs(sources, FAST)
    assert [o.status for o in outcomes] == ["passed", "failed", "failed", "failed", "failed", "failed"], outcomes
    assert "AssertionError: wrong" in outcomes[1].detail
    assert "SyntaxError" in outcomes[2].detail


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    yield server
    server.close()


def _nothing_arrived(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


CONNECT = """
    import socket
    s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    s.sendall(b"escaped")
"""


def test_network_is_refused_by_the_audit_hook(listener):
    check(CONNECT.format(port=listener.getsockname()[1]), "blocked", detail="socket.", use_netns=False)
    assert _nothing_arrived(listener)


@pytest.mark.skipif(not network_namespace_prefix(), reason="no network namespace on this machine")
def test_network_namespace_alone_has_no_route(listener):
    # Audit hook off: the empty namespace must stop the connection by itself.
    check(CONNECT.format(port=listener.getsockname()[1]), "failed", audit=False)
    assert _nothing_arrived(listener)


def test_writes_and_deletes_outside_the_temp_dir_are_refused(tmp_path):
    outside, victim = tmp_path / "created.txt", tmp_path / "victim.txt"
    victim.write_text("keep me")
    check(f"open({str(outside)!r}, 'w').write('x')", "blocked", detail="open")
    check(f"import os\nos.remove({str(victim)!r})", "blocked", detail="os.remove")
    check(f"import os\nos.rename({str(victim)!r}, 'stolen.txt')", "blocked", detail="os.rename")
    check(f"import os\nos.mkdir({str(tmp_path / 'd')!r})", "blocked", detail="os.mkdir")
    check(f"import os\nos.chdir('/')\nopen({str(outside.name)!r}, 'a')", "blocked", detail="open")
    assert not outside.exists() and not (tmp_path / "d").exists()
    assert victim.read_text() == "keep me"


def test_new_processes_are_refused(tmp_path):
    marker = tmp_path / "from_shell"
    check(f"import os\nos.system('touch {marker}')", "blocked", detail="os.system")
    check(f"import subprocess\nsubprocess.run(['touch', {str(marker)!r}])", "blocked", detail="subprocess")
    assert not marker.exists()


def test_a_refusal_caught_by_the_program_still_fails_it(tmp_path):
    check(
        f"""
        try:
            open({str(tmp_path / "x")!r}, 'w')
        except Exception:
            pass
    """,
        "blocked",
    )


def test_the_temp_dir_is_writable_and_is_home():
    check(
        """
        import os, tempfile
        assert os.path.expanduser('~') == os.getcwd()
        with open('scratch.txt', 'w') as f:
            f.write('ok')
        assert open('scratch.txt').read() == 'ok'
        os.remove('scratch.txt')
        with tempfile.NamedTemporaryFile(dir=None) as t:
            assert t.name.startswith(os.getcwd())
    """,
        "passed",
    )


def test_runaway_time_is_killed():
    outcome = check("while True:\n    pass\n", "timeout", Limits(seconds=1.0, memory_mb=512))
    assert outcome.seconds < 4


def test_runaway_memory_is_stopped():
    check("x = bytearray(600 * 2**20)\n", "memory", Limits(seconds=5.0, memory_mb=256))
    check("xs = []\nwhile True:\n    xs.append(bytearray(2**20))\n", "memory", Limits(seconds=5.0, memory_mb=256))


def test_runaway_output_is_cut():
    # Python ignores SIGXFSZ, so the file-size limit surfaces as an OSError in the program.
    check(
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        "failed",
        Limits(seconds=5.0, output_kb=256),
        detail="File too large",
    )
