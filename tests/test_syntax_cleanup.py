"""clean_completion, data-driven: check(source_with_cursor, model_text, expected).

`expected` is the text to insert, or Rejected("part of the reason"). Where it matters a case also
states what the document reads after the insertion (`result=`), so the replacement range is tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sdls.syntax import SyntaxDocument, clean_completion, completion_scope


@dataclass(frozen=True)
class Rejected:
    because: str


def split_cursor(source: str) -> tuple[str, int]:
    marker = "█" if "█" in source else "<|>"
    assert source.count(marker) == 1, "mark the cursor exactly once"
    return source.replace(marker, ""), source.index(marker)


def check(
    source: str,
    model_text: str,
    expected: str | Rejected,
    *,
    result: str | None = None,
    language: str = "python",
    invoked: bool = False,
) -> None:
    text, offset = split_cursor(source)
    doc = SyntaxDocument(text, language)
    scope = completion_scope(doc, offset, invoked)
    cleaned = clean_completion(doc, offset, model_text, scope)
    if isinstance(expected, Rejected):
        assert cleaned.rejected is not None and expected.because in cleaned.rejected, cleaned
        return
    assert cleaned.rejected is None, cleaned
    assert cleaned.text == expected, cleaned
    assert offset <= cleaned.replace_end <= scope.replace_end
    if result is not None:
        assert text[:offset] + cleaned.text + text[cleaned.replace_end :] == result


# ---- single line ------------------------------------------------------------------------------


def test_plain_single_line():
    check("x = █\n", "compute(1)", "compute(1)")


def test_line_scope_keeps_first_line():
    check("x = █\n", "1\ny = 2\nz = 3", "1")


def test_trims_trailing_whitespace():
    check("x = █\n", "1   ", "1")


def test_reemitted_closer_replaces_the_documents_closer():
    check("x = foo(█)\n", "a, b)", "a, b)", result="x = foo(a, b)\n")


def test_missing_closer_keeps_the_documents_closer():
    check("x = foo(█)\n", "a, b", "a, b", result="x = foo(a, b)\n")


def test_extra_closer_is_cut():
    check("x = foo(█)\n", "a))", "a)", result="x = foo(a)\n")


def test_two_replaced_closers_one_reemitted():
    check("x = d[f(█)]\n", "1)", "1)", result="x = d[f(1)]\n")


def test_two_replaced_closers_both_reemitted_with_more_text():
    check("x = d[f(█)]\n", "1)] + 2", "1)] + 2", result="x = d[f(1)] + 2\n")


def test_suffix_repeat_is_trimmed():
    check("x = foo(█, y)\n", "a, y)", "a", result="x = foo(a, y)\n")


def test_suffix_repeat_of_colon():
    check("if x█:\n    pass\n", " > 0:", " > 0")


def test_closer_of_a_bracket_closed_later_on_the_line_is_cut():
    check("x = foo(█, y)\n", "a)", "a")


def test_unclosed_bracket_in_document_may_be_closed():
    check("x = foo(a, █", "b)", "b)", result="x = foo(a, b)")


def test_brackets_in_strings_do_not_count():
    check("x = foo(█)\n", "')', 1)", "')', 1)", result="x = foo(')', 1)\n")


def test_brackets_in_comments_do_not_count():
    check("x = █\n", "1  # ) not a closer", "1  # ) not a closer")


def test_mismatched_closer_is_cut():
    check("x = █\n", "[1, 2)", "[1, 2")


def test_invoked_in_string_ignores_brackets():
    check("x = 'a█'\n", "b) c", "b) c", invoked=True)


def test_invoked_in_comment():
    check("# see █\n", "docs)", "docs)", invoked=True)


# ---- rejections -------------------------------------------------------------------------------


def test_no_completion_scope_rejects():
    check("x = fo█o\n", "bar", Rejected("no completion here: inside a word"))


def test_empty_output_rejected():
    check("x = █\n", "   ", Rejected("nothing left"))


def test_only_suffix_rejected():
    check("x = foo(█, y)\n", ", y)", Rejected("repeats the text after the cursor"))


def test_adds_a_syntax_error():
    check("x = █\n", "1 +* 2", Rejected("syntax error in the statement it completes at line 1"))


def test_unclosed_string_rejected():
    check("def f():\n    █\n\nprint(1)\n", "return 'abc", Rejected("adds a syntax error"))


def test_existing_errors_elsewhere_are_not_blamed():
    check("y = (1,\n\nx = █\n", "2", "2")


def test_existing_error_at_cursor_not_fixed_is_not_blamed():
    check("x = foo(a, █", "b", "b")


def test_js_syntax_error_rejected():
    check("let x = █;\n", "1 +* 2", Rejected("adds a syntax error"), language="javascript")


# ---- blocks: re-indentation, scope exit, repeats ----------------------------------------------


def test_header_block_body():
    check("def f(x):█\n", "\n    return x", "\n    return x")


def test_header_block_body_reindented_to_file_unit():
    check(
        "class A:\n  def f(self):█\n",
        "\n    return 1\n",
        "\n    return 1",
        result="class A:\n  def f(self):\n    return 1\n",
    )


def test_header_block_model_used_other_indent():
    check("def f(x):█\n", "\n  y = x\n  if y:\n    return y\n", "\n    y = x\n    if y:\n      return y")


def test_header_block_relative_output_is_indented():
    check("def f(x):█\n", "\nreturn x", "\n    return x")


def test_dedent_past_the_block_is_cut():
    check("def f(x):█\n", "\n    return x\n\ndef g():\n    pass\n", "\n    return x")


def test_empty_body_first_line_at_cursor():
    check("def f(x):\n    █\n\nprint(2)\n", "y = x\n    return y\nprint(2)", "y = x\n    return y")


def test_empty_body_cursor_at_column_zero_gets_indent():
    check("def f(x):\n█\n", "return x", "    return x", result="def f(x):\n    return x\n")


def test_empty_body_model_indents_first_line_itself():
    check("def f(x):\n█\n", "    return x\n", "    return x")


def test_empty_body_nested_blocks_keep_relative_indent():
    check(
        "def f(xs):\n    █\n",
        "for x in xs:\n        if x:\n            return x\n    return None",
        "for x in xs:\n        if x:\n            return x\n    return None",
    )


def test_stops_at_line_repeating_the_document_below():
    check("def f(x):\n    █\n\ndef g():\n    pass\n", "return x\n\ndef g():\n    pass", "return x")


def test_repeats_the_next_line_exactly_rejected():
    check("def f(x):\n    █\n    print(x)\n", "print(x)", Rejected("repeats the line below"))


def test_degenerate_repeats_are_cut():
    check("def f(x):█\n", "\n    x += 1\n    x += 1\n    x += 1\n    x += 1", "\n    x += 1")


def test_block_with_crlf_model_output():
    check("def f(x):█\n", "\r\n    return x\r\n", "\n    return x")


def test_js_block_stops_at_foreign_brace():
    check("function f(a) {█\n}\n", "\n  return a;\n}\n\nfunction g() {}\n", "\n    return a;", language="javascript")


def test_js_auto_paired_braces_keep_closer_on_own_line():
    check(
        "function f(a) {█}\n",
        "\n  return a;\n}",
        "\n    return a;\n",
        language="javascript",
        result="function f(a) {\n    return a;\n}\n",
    )


def test_js_nested_braces_inside_completion_are_fine():
    check(
        "function f(a) {\n  █\n}\n",
        "if (a) {\n    return 1;\n  }\n  return 2;\n}\n",
        "if (a) {\n    return 1;\n  }\n  return 2;",
        language="javascript",
    )


def test_go_block():
    check("package main\n\nfunc f(a int) int {█\n}\n", "\n\treturn a + 1\n}\n", "\n    return a + 1", language="go")


def test_rust_block_lifetimes_do_not_confuse_brackets():
    check(
        "fn f<'a>(s: &'a str) -> &'a str {█\n}\n",
        "\n    let t: &'a str = s;\n    t\n}\n",
        "\n    let t: &'a str = s;\n    t",
        language="rust",
    )


def test_lua_block_stops_at_end_below():
    check("function f(a)\n  █\nend\n", "return a + 1\nend\n\nfunction g() end", "return a + 1", language="lua")


def test_plain_text_line():
    check("see (█)\n", "chapter 2)", "chapter 2)", language="text", result="see (chapter 2)\n")


def test_unicode_before_cursor():
    check("s = 'é' + f(█)\n", "'漢字')", "'漢字')", result="s = 'é' + f('漢字')\n")


@pytest.mark.parametrize("model_text", ["", "\n", "\n\n\n", ")", "))))"])
def test_degenerate_outputs_never_crash(model_text):
    text, offset = split_cursor("x = foo(█)\n")
    doc = SyntaxDocument(text, "python")
    cleaned = clean_completion(doc, offset, model_text, completion_scope(doc, offset, False))
    assert cleaned.rejected is not None or cleaned.text.strip()


def test_block_body_with_a_syntax_error_rejected():
    check("def f(x):█\n", "\n    return x +* 1", Rejected("adds a syntax error at line 2"))


def test_rejection_reports_the_reason_for_a_bad_body():
    check("def f(x):\n    █\n\nprint(1)\n", "return (x,\n", Rejected("syntax error"))


def test_method_body_in_class_keeps_class_indent():
    check(
        "class A:\n    def f(self):\n        █\n\n    def g(self):\n        pass\n",
        "return 1\n\n    def g(self):\n        pass",
        "return 1",
    )


def test_keyword_arguments_line():
    check("plot(x, █)\n", "color='red')", "color='red')", result="plot(x, color='red')\n")


def test_ts_line_with_semicolon_suffix():
    check("const x: number = f(█);\n", "1, 2);", "1, 2", language="typescript", result="const x: number = f(1, 2);\n")


def test_crlf_document_gets_crlf_lines():
    check("def f(x):█\r\n\r\nprint(1)\r\n", "\n    y = x\n    return y\n", "\r\n    y = x\r\n    return y")


def test_crlf_document_replaces_closers_before_the_line_end():
    check("x = foo(█)\r\n", "1)", "1)", result="x = foo(1)\r\n")


def test_go_statement_in_a_broken_body_is_checked_inside_a_function():
    check("package main\n\nfunc f() {\n\tx := g(█\n", "1)", "1)", language="go")
    check("package main\n\nfunc f() {\n\tx := g(█\n", "1 +* )", Rejected("syntax error"), language="go")
