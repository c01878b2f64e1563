"""syntax_errors (ERROR / MISSING with ranges) and find_holes (stubs, TODOs) across languages."""

from __future__ import annotations

from sdls.syntax import SyntaxDocument, find_holes, syntax_errors


def errors(text: str, language: str = "python") -> list[tuple[str, str, str]]:
    """(kind, covered text, message) per issue."""
    return [(e.kind, text[e.start : e.end], e.message) for e in syntax_errors(SyntaxDocument(text, language))]


def holes(text: str, language: str = "python") -> list[tuple[str, str, str | None, str]]:
    """(kind, covered text, enclosing name, first line of the enclosing range) per hole."""
    return [
        (h.kind, text[h.start : h.end], h.enclosing_name, text[h.enclosing_start : h.enclosing_end].split("\n")[0])
        for h in find_holes(SyntaxDocument(text, language))
    ]


# ---- errors -----------------------------------------------------------------------------------


def test_clean_code_has_no_errors():
    assert errors("def f(x):\n    return x\n") == []
    assert errors("function f() { return 1; }\n", "javascript") == []


def test_unexpected_token_range_is_the_token():
    assert errors("foo(a b)\n") == [("error", "b", "unexpected `b`")]


def test_missing_token_is_zero_width_at_its_place():
    text = "def f(:\n    pass\n"
    [issue] = syntax_errors(SyntaxDocument(text, "python"))
    assert (issue.kind, issue.start, issue.end, issue.message) == ("missing", 6, 6, "missing `)`")


def test_unclosed_bracket_is_named():
    assert errors("x = [1, 2\n") == [("error", "x = [1, 2", "`[` is never closed")]


def test_error_ranges_are_character_offsets_after_unicode():
    text = "s = 'é漢😀'\nfoo(a b)\n"
    assert errors(text) == [("error", "b", "unexpected `b`")]


def test_several_errors_in_order():
    found = errors("foo(a b)\nx = 1\nbar(c d)\n")
    assert [covered for _, covered, _ in found] == ["b", "d"]


def test_js_missing_brace():
    assert errors("function f(a) {\n", "javascript") == [("missing", "", "missing `}`")]


def test_go_and_rust_and_lua_errors_found():
    assert errors("package main\nfunc f() {\n  x := \n}\n", "go")
    assert errors("fn f() { let x = ; }\n", "rust")
    assert errors("local x = = 1\n", "lua")


def test_plain_text_has_no_syntax_errors():
    assert errors("foo(a b", "text") == []


def test_errors_follow_edits():
    doc = SyntaxDocument("x = 1\n", "python")
    doc.apply_edit(4, 5, "(1")
    assert [e.message for e in syntax_errors(doc)] == ["`(` is never closed"]
    doc.apply_edit(6, 6, ")")
    assert syntax_errors(doc) == []


# ---- holes ------------------------------------------------------------------------------------


def test_python_stub_kinds_and_enclosing_definitions():
    text = (
        "class A:\n"
        '    def f(self):\n        """Doc."""\n        pass\n'
        "    def g(self): ...\n"
        "    x = ...\n"
        'def h():\n    raise NotImplementedError("later")\n'
        "def k():\n    # TODO: handle empty input\n    return 1\n"
    )
    assert holes(text) == [
        ("pass", "pass", "f", "def f(self):"),
        ("ellipsis", "...", "g", "def g(self): ..."),
        ("not_implemented", 'raise NotImplementedError("later")', "h", "def h():"),
        ("todo", "# TODO: handle empty input", "k", "def k():"),
    ]


def test_idiomatic_pass_is_not_a_hole():
    text = "try:\n    run()\nexcept KeyError:\n    pass\nfinally:\n    pass\n"
    assert holes(text) == []


def test_pass_beside_real_code_is_not_a_hole():
    assert holes("def f(x):\n    y = x\n    pass\n") == []


def test_module_level_todo_has_no_enclosing_name():
    text = "x = 1  # todo: rename\n"
    [(kind, covered, name, enclosing_first_line)] = holes(text)
    assert (kind, covered, name, enclosing_first_line) == ("todo", "# todo: rename", None, "x = 1  # todo: rename")


def test_class_stub_is_a_hole_of_the_class():
    assert holes("class Empty:\n    pass\n") == [("pass", "pass", "Empty", "class Empty:")]


def test_other_languages():
    js = "function f(a) {}\nfunction g() { throw new Error('not implemented'); }\n// TODO later\n"
    assert [(k, n) for k, _, n, _ in holes(js, "javascript")] == [
        ("empty_body", "f"),
        ("not_implemented", "g"),
        ("todo", None),
    ]
    rust = "fn f() -> i32 { todo!() }\nfn g() { unimplemented!() }\nfn h() {}\n"
    assert [(k, n) for k, _, n, _ in holes(rust, "rust")] == [
        ("not_implemented", "f"),
        ("not_implemented", "g"),
        ("empty_body", "h"),
    ]
    go = 'package main\nfunc f() int {\n\tpanic("not implemented")\n}\nfunc g() {}\n'
    assert [(k, n) for k, _, n, _ in holes(go, "go")] == [("not_implemented", "f"), ("empty_body", "g")]
    lua = 'local function f()\n  error("not implemented")\nend\n-- TODO: g\n'
    assert [(k, n) for k, _, n, _ in holes(lua, "lua")] == [("not_implemented", "f"), ("todo", None)]


def test_no_holes_in_finished_code():
    assert holes("def f():\n    return 1\n") == []


def test_no_holes_in_plain_text():
    assert holes("def f():\n    pass\n# TODO plain text is not parsed\n", "text") == []


def test_arrow_function_takes_the_name_it_is_bound_to():
    text = "const load = () => {\n  // TODO fetch\n};\n"
    assert holes(text, "typescriptreact") == [("empty_body", "{\n  // TODO fetch\n}", "load", "() => {")]
