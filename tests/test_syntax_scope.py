"""completion_scope: none / line / block, the replaceable closers and the indent, data-driven."""

from __future__ import annotations

import pytest

from sdls.syntax import SyntaxDocument, completion_scope


def split_cursor(source: str) -> tuple[str, int]:
    marker = "█" if "█" in source else "<|>"
    assert source.count(marker) == 1, "mark the cursor exactly once"
    return source.replace(marker, ""), source.index(marker)


def check(
    source: str,
    kind: str,
    *,
    replaces: str = "",
    indent: str | None = None,
    reason: str = "",
    language: str = "python",
    invoked: bool = False,
) -> None:
    text, offset = split_cursor(source)
    scope = completion_scope(SyntaxDocument(text, language), offset, invoked)
    assert scope.kind == kind, scope
    assert text[offset : scope.replace_end] == replaces, scope
    if indent is not None:
        assert scope.indent == indent, scope
    assert reason in scope.reason, scope


# ---- no completion ----------------------------------------------------------------------------


def test_inside_a_word():
    check("x = fo█o + 1\n", "none", reason="inside a word")


def test_word_to_the_right():
    check("x = █foo\n", "none", reason="a word follows")


def test_in_indentation_before_code():
    check("def f():\n  █  return 1\n", "none", reason="indentation")


def test_string_not_invoked():
    check("x = 'ab█c'\n", "none", reason="string")


def test_docstring_not_invoked():
    check('def f():\n    """Sum █\n    """\n', "none", reason="string")


def test_comment_not_invoked():
    check("x = 1  # note█\n", "none", reason="comment")


def test_js_block_comment_not_invoked():
    check("/* abc █ */\nlet x = 1;\n", "none", reason="comment", language="javascript")


# ---- invoked inside literals: one line, no replacement --------------------------------------


def test_string_invoked_is_a_line():
    check("x = 'ab█'\n", "line", reason="string (invoked)", invoked=True)


def test_comment_invoked_is_a_line():
    check("x = 1  # note█\n", "line", reason="comment (invoked)", invoked=True)


def test_fstring_interpolation_is_code():
    check("x = f'{va█}'\n", "line", replaces="", reason="single line")


def test_after_a_closed_string_is_code():
    check("x = 'abc'█\n", "line", reason="single line")


def test_after_a_closed_js_block_comment_is_code():
    check("/* c */█\n", "line", language="javascript")


# ---- single line ------------------------------------------------------------------------------


def test_end_of_statement():
    check("x = 1█\n", "line", indent="")


def test_closers_may_be_replaced():
    check("x = foo(█)\n", "line", replaces=")")


def test_several_closers_and_spaces():
    check("    y = d[f(█)] \n", "line", replaces=")]", indent="    ")


def test_other_text_after_cursor_is_not_replaced():
    check("x = foo(█, y)\n", "line", replaces="")


def test_colon_after_cursor_is_not_replaced():
    check("if x█:\n    pass\n", "line", replaces="")


def test_plain_text_is_line_scope():
    check("hello wo█r\nmore", "none", reason="inside a word", language="text")
    check("hello (█)\n", "line", replaces=")", reason="plain text", language="text")


def test_lambda_colon_is_not_a_block():
    check("f = lambda x:█\n", "line")


def test_dict_colon_is_not_a_block():
    check("d = {'a':█}\n", "line", replaces="}")


def test_blank_line_in_non_empty_body_is_line():
    check("def f():\n    █\n    return 1\n", "line", indent="    ")


# ---- blocks -----------------------------------------------------------------------------------


def test_end_of_def_header():
    check("def f(x):█\n", "block", indent="    ", reason="header")


def test_end_of_nested_header_uses_file_indent_unit():
    check("class A:\n  def f(self):\n    if x:█\n", "block", indent="      ")


def test_header_at_end_of_file_without_newline():
    check("for i in range(3):█", "block", indent="    ")


def test_else_header():
    check("if a:\n    b()\nelse:█\n", "block", indent="    ")


def test_header_while_typing_inside_a_broken_file():
    check("def f(x):\n    return (x\n\ndef g():█\n", "block", indent="    ")


def test_empty_body_blank_line():
    check("def f(x):\n    █\n\nprint(1)\n", "block", indent="    ", reason="empty block body")


def test_empty_body_cursor_at_column_zero():
    check("def f(x):\n█\n", "block", indent="    ", reason="empty block body")


def test_empty_body_after_blank_lines():
    check("class A:\n\n    █\n", "block", indent="    ")


def test_js_brace_header():
    check("function f(a) {█\n}\n", "block", indent="    ", language="javascript")


def test_js_auto_paired_braces():
    check("function f(a) {█}\n", "block", replaces="", language="javascript")


def test_js_empty_body():
    check("function f(a) {\n  █\n}\n", "block", indent="  ", language="javascript")


def test_go_header():
    check("package main\n\nfunc f() int {█\n}\n", "block", language="go")


def test_rust_header():
    check("fn f(a: i32) -> i32 {█\n}\n", "block", language="rust")


def test_lua_then():
    check("if x then█\nend\n", "block", indent="    ", language="lua")


def test_lua_function():
    check("local function f(a)█\nend\n", "block", language="lua")


def test_lua_empty_body():
    check("function f(a)\n  █\nend\n", "block", indent="  ", language="lua")


def test_ts_line():
    check("const x: number = f(█);\n", "line", replaces="", language="typescript")


# ---- bad input --------------------------------------------------------------------------------


def test_offset_outside_document_is_a_clear_error():
    with pytest.raises(ValueError, match="outside the document"):
        completion_scope(SyntaxDocument("x", "python"), 5, False)


def test_cursor_marker_alternative():
    check("x = foo(<|>)\n", "line", replaces=")")
