"""SyntaxDocument: language lookup, offsets across UTF-8, incremental reparse == fresh parse."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdls.syntax import SyntaxDocument, language_for


@pytest.mark.parametrize(
    "given_id, expected",
    [
        ("python", "python"),
        ("Python", "python"),
        ("foo.py", "python"),
        ("/a/b/c.pyi", "python"),
        ("file:///x/y.rs", "rust"),
        ("rust", "rust"),
        (".go", "go"),
        ("main.go", "go"),
        ("javascript", "javascript"),
        ("app.jsx", "javascript"),
        ("typescript", "typescript"),
        ("index.ts", "typescript"),
        ("typescriptreact", "tsx"),
        ("init.lua", "lua"),
        ("lua", "lua"),
        ("markdown", None),
        ("notes.txt", None),
        ("", None),
        (None, None),
        ("Makefile", None),
        ("cobol", None),
    ],
)
def test_language_for(given_id, expected):
    assert language_for(given_id) == expected


def test_unknown_language_is_plain_text():
    doc = SyntaxDocument("hello (world\n", "cobol")
    assert doc.language is None and doc.tree is None
    doc.apply_edit(0, 5, "bye")
    assert doc.text == "bye (world\n" and doc.tree is None


def test_offsets_round_trip_through_utf8():
    text = "a = 'é'\n# 漢字 ok\nb = '😀' + a\n"
    doc = SyntaxDocument(text, "python")
    for offset in range(len(text) + 1):
        assert doc.offset_of(doc.byte_of(offset)) == offset
        assert doc.byte_of(offset) == len(text[:offset].encode("utf-8"))
    # node ranges come back as character offsets
    string_node = doc.tree.root_node.children[2].child_by_field_name("right").children[0]
    start, end = doc.node_range(string_node)
    assert text[start:end] == "'😀'"


def test_apply_edit_rejects_bad_ranges():
    doc = SyntaxDocument("x = 1\n", "python")
    with pytest.raises(ValueError, match="outside the document"):
        doc.apply_edit(3, 100, "")
    with pytest.raises(ValueError):
        doc.apply_edit(4, 2, "")
    with pytest.raises(TypeError):
        SyntaxDocument(b"x = 1", "python")


def test_incremental_edit_reuses_the_tree_and_matches_fresh_parse():
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(50))
    doc = SyntaxDocument(text, "python")
    start = text.index("return x + 25")
    doc.apply_edit(start, start + len("return x + 25"), "return (x *")
    assert doc.tree.root_node.has_error  # the unclosed bracket is seen
    assert str(doc.tree.root_node) == str(SyntaxDocument(doc.text, "python").tree.root_node)
    doc.apply_edit(start + len("return (x *"), start + len("return (x *"), " 2)")
    assert not doc.tree.root_node.has_error
    assert doc.text == text.replace("return x + 25", "return (x * 2)")


def test_with_edit_leaves_the_original_alone():
    doc = SyntaxDocument("def f():\n    return 1\n", "python")
    before = str(doc.tree.root_node)
    other = doc.with_edit(13, 21, "return (")
    assert other.tree.root_node.has_error and not doc.tree.root_node.has_error
    assert str(doc.tree.root_node) == before and doc.text == "def f():\n    return 1\n"


def test_a_snapshot_stays_as_it_was_while_the_document_is_edited():
    doc = SyntaxDocument("def f():\n    return 1\n", "python")
    snap = doc.snapshot()
    doc.apply_edit(13, 21, "return (")
    assert doc.tree.root_node.has_error and not snap.tree.root_node.has_error
    assert snap.text == "def f():\n    return 1\n" and snap.version == doc.version - 1
    assert str(snap.tree.root_node) == str(SyntaxDocument(snap.text, "python").tree.root_node)


_PIECES = ["x", "é", "😀", " ", "\n", "(", ")", ":", "def ", "    ", "'", "#", "1", "=", "漢"]


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1), st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)),
        max_size=6,
    ),
    language=st.sampled_from(["python", "javascript", "rust", "lua"]),
)
def test_any_edit_sequence_matches_a_fresh_parse(base, edits, language):
    doc = SyntaxDocument(base, language)
    expected = base
    for a, b, new in edits:
        start, end = sorted((int(a * len(expected)), int(b * len(expected))))
        doc.apply_edit(start, end, new)
        expected = expected[:start] + new + expected[end:]
    assert doc.text == expected
    assert doc.data == expected.encode("utf-8")
    assert _shape(doc.tree.root_node) == _shape(SyntaxDocument(expected, language).tree.root_node)


def _shape(node):
    """Every node's type and byte range, in order (str(node) alone omits positions)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append((n.type, n.start_byte, n.end_byte, n.is_missing))
        stack.extend(reversed(n.children))
    return out
