"""plan_blocks: blocks along statement boundaries, def-use links, waves, cycle breaking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdls.syntax import SyntaxDocument, plan_blocks


def whole(text: str, language: str = "python"):
    doc = SyntaxDocument(text, language)
    return doc, plan_blocks(doc, [(0, len(text))])


def block_text(doc, block) -> str:
    return doc.text[block.start : block.end]


def test_module_functions_ordered_by_use():
    _doc, plan = whole("def f(x):\n    return g(x)\n\ndef g(y):\n    return y\n\nX = f(1)\n")
    assert [b.defines for b in plan.blocks] == [{"f"}, {"g"}, {"X"}]
    assert plan.waves == [[1], [0], [2]]
    assert plan.cycles_broken == []


def test_blocks_cover_the_region_exactly():
    text = "import os\n\n# helper\ndef f():\n    return os.sep\n\nx = f()  # call\n"
    doc, plan = whole(text)
    assert "".join(block_text(doc, b) for b in plan.blocks) == text
    assert block_text(doc, plan.blocks[1]).startswith("# helper\ndef f")  # comment goes with its def
    assert plan.blocks[0].defines == {"os"}
    assert plan.wave_of() == [0, 1, 2]


def test_independent_blocks_share_a_wave():
    _doc, plan = whole("a = 1\nb = 2\nc = a + b\nd = 4\n")
    assert plan.waves == [[0, 1, 3], [2]]


def test_function_body_region_parameters_come_from_the_header():
    text = "def area(w, h):\n    s = w * h\n    t = s / 2\n    return t\n"
    _doc, plan = whole(text)
    header, *body = plan.blocks
    assert header.defines == {"area", "w", "h"}
    assert [b.defines for b in body] == [{"s"}, {"t"}, set()]
    assert plan.wave_of() == [0, 1, 2, 3]


def test_body_only_region():
    text = "def f(a):\n    x = a\n    y = 2\n    return x + y\n"
    start = text.index("    x")
    doc = SyntaxDocument(text, "python")
    plan = plan_blocks(doc, [(start, len(text))])
    assert [b.defines for b in plan.blocks] == [{"x"}, {"y"}, set()]
    assert plan.waves == [[0, 1], [2]]
    assert plan.blocks[0].start == start and plan.blocks[-1].end == len(text)


def test_class_methods_linked_through_self_attributes():
    text = (
        "class Counter(Base):\n"
        "    def __init__(self, n):\n        self.n = n\n\n"
        "    def bump(self):\n        self.n += 1\n        return self.double()\n\n"
        "    def double(self):\n        return self.n * 2\n"
    )
    _doc, plan = whole(text)
    header, init, bump, _double = plan.blocks
    assert header.defines == {"Counter"} and "Base" in header.uses
    assert init.defines == {"self.__init__", "self.n"}
    assert {"self.n", "self.double"} <= bump.uses
    assert plan.depends_on[3] == {1}
    assert plan.wave_of()[bump_index(plan)] > plan.wave_of()[3]


def bump_index(plan) -> int:
    return next(i for i, b in enumerate(plan.blocks) if "self.bump" in b.defines)


def test_locals_of_nested_functions_are_not_outer_reads():
    _doc, plan = whole("x = 1\ndef f(x):\n    y = x\n    return [z for z in y]\n")
    assert plan.blocks[1].uses.isdisjoint({"x", "y", "z"})
    assert plan.waves == [[0, 1]]


def test_lambda_and_comprehension_scopes():
    _doc, plan = whole("k = 3\nf = lambda k: k + 1\ng = [k for k in range(2)]\nh = k\n")
    assert "k" not in plan.blocks[1].uses and "k" not in plan.blocks[2].uses
    assert plan.depends_on[3] == {0}


def test_imports_bind_their_alias():
    _doc, plan = whole("import numpy as np\nfrom os import path as p, sep\nimport a.b\nx = np.zeros(p, sep, a)\n")
    assert [b.defines for b in plan.blocks[:3]] == [{"np"}, {"p", "sep"}, {"a"}]
    assert plan.depends_on[3] == {0, 1, 2}


def test_redefinition_links_to_the_declaration_in_force():
    _doc, plan = whole("v = 1\nprint(v)\nv = 2\nprint(v)\n")
    assert plan.depends_on == [set(), {0}, set(), {2}]


def test_mutual_recursion_is_broken_by_source_order():
    _doc, plan = whole("def even(n):\n    return n == 0 or odd(n - 1)\n\ndef odd(n):\n    return even(n - 1)\n")
    assert len(plan.cycles_broken) == 1
    link = plan.cycles_broken[0]
    assert (link.block, link.depends_on, link.names) == (0, 1, ("odd",))
    assert plan.waves == [[0], [1]]


def test_several_regions_and_empty_ones():
    text = "def a():\n    pass\n\ndef b():\n    return a()\n"
    doc = SyntaxDocument(text, "python")
    split = text.index("def b")
    plan = plan_blocks(doc, [(split, len(text)), (0, split), (5, 5)])
    assert [b.defines for b in plan.blocks][:1] == [{"a"}]
    assert plan.wave_of()[0] < plan.wave_of()[-1]


def test_bad_regions_are_clear_errors():
    doc = SyntaxDocument("x = 1\n", "python")
    with pytest.raises(ValueError, match="outside"):
        plan_blocks(doc, [(0, 99)])
    with pytest.raises(ValueError, match="overlap"):
        plan_blocks(doc, [(0, 4), (2, 5)])


def test_plain_text_is_one_block():
    doc = SyntaxDocument("anything (here\n", "text")
    plan = plan_blocks(doc, [(0, 8)])
    assert [(b.start, b.end) for b in plan.blocks] == [(0, 8)] and plan.waves == [[0]]


def test_broken_code_still_plans():
    _doc, plan = whole("def f(:\n    return g(\n\ndef g():\n    pass\n")
    assert plan.blocks and sum(len(w) for w in plan.waves) == len(plan.blocks)


def test_javascript_declarations():
    _doc, plan = whole(
        "function f(a) { return helper(a) + K; }\nconst K = 2;\nfunction helper(x) { return x; }\n", "javascript"
    )
    assert [b.defines for b in plan.blocks] == [{"f"}, {"K"}, {"helper"}]
    assert plan.depends_on[0] == {1, 2}
    assert "a" not in plan.blocks[0].uses


def test_go_declarations():
    _doc, plan = whole("package main\n\nfunc f() int { return g() }\n\nfunc g() int { return 1 }\n", "go")
    assert {"f"} in [b.defines for b in plan.blocks] and {"g"} in [b.defines for b in plan.blocks]
    f_index = next(i for i, b in enumerate(plan.blocks) if b.defines == {"f"})
    g_index = next(i for i, b in enumerate(plan.blocks) if b.defines == {"g"})
    assert plan.depends_on[f_index] == {g_index}


def test_rust_and_lua_declarations():
    _, rust = whole("fn f() -> i32 { g() }\nfn g() -> i32 { 1 }\n", "rust")
    assert rust.depends_on[0] == {1}
    _, lua = whole("local function f() return g() end\nfunction g() return 1 end\n", "lua")
    assert [b.defines for b in lua.blocks] == [{"f"}, {"g"}] and lua.depends_on[0] == {1}


# ---- property: declaration before use ----------------------------------------------------------


@st.composite
def modules(draw):
    """Random modules: each block declares one new name and reads some of the others (cycles allowed)."""
    n = draw(st.integers(2, 9))  # (a region of one definition is split into header and body)
    blocks = []
    for i in range(n):
        reads = sorted(draw(st.sets(st.integers(0, n - 1), max_size=3)) - {i})
        expr = " + ".join(f"n{j}()" if draw(st.booleans()) else f"n{j}" for j in reads) or "0"
        if draw(st.booleans()):
            blocks.append(f"def n{i}():\n    return {expr}\n")
        else:
            blocks.append(f"n{i} = {expr}\n")
    return blocks


@settings(max_examples=80, deadline=None)
@given(modules())
def test_no_block_uses_a_name_declared_in_the_same_or_a_later_wave(blocks):
    text = "\n".join(blocks)
    _doc, plan = whole(text)
    assert [b.defines for b in plan.blocks] == [{f"n{i}"} for i in range(len(blocks))]  # the reading is right
    assert sorted(i for w in plan.waves for i in w) == list(range(len(plan.blocks)))
    wave = plan.wave_of()
    declarer = {name: i for i, b in enumerate(plan.blocks) for name in b.defines}
    broken = {(link.block, link.depends_on) for link in plan.cycles_broken}
    for u, block in enumerate(plan.blocks):
        for name in block.uses:
            d = declarer.get(name)
            if d is None or d == u or (u, d) in broken:
                continue
            assert wave[d] < wave[u], (name, u, d, plan)
    for link in plan.cycles_broken:  # only edges to later blocks are dropped, and each was real
        assert link.depends_on > link.block
        assert set(link.names) <= plan.blocks[link.block].uses
    if not _has_cycle([{declarer[n] for n in b.uses if n in declarer} - {i} for i, b in enumerate(plan.blocks)]):
        assert plan.cycles_broken == []


def _has_cycle(graph: list[set[int]]) -> bool:
    state = [0] * len(graph)

    def visit(v: int) -> bool:
        state[v] = 1
        for w in graph[v]:
            if state[w] == 1 or (state[w] == 0 and visit(w)):
                return True
        state[v] = 2
        return False

    return any(state[v] == 0 and visit(v) for v in range(len(graph)))


def test_deeply_nested_code_does_not_overflow_the_stack():
    deep = "x = " + "(" * 400 + "1" + ")" * 400 + "\n" + "y = " + " + ".join(["x"] * 3000) + "\n"
    _doc, plan = whole(deep)
    assert [b.defines for b in plan.blocks] == [{"x"}, {"y"}] and plan.depends_on[1] == {0}
