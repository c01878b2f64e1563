"""The trained tokenizer round-trips source exactly and keeps indentation cheap."""

import pytest

from sdls_model.tokenizer import SPECIAL_TOKENS, train_tokenizer

CODE = '''class Stack:
    """A LIFO stack."""

    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        if not self.items:
            raise IndexError("pop from empty stack")
        return self.items.pop()
'''


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([CODE.replace("Stack", f"Stack{i}") for i in range(40)], vocab_size=400)


@pytest.mark.parametrize(
    "text",
    [
        CODE,
        "def f(x):\n\treturn x  \r\n\r\n# trailing spaces and CRLF  \n",
        "s = 'naïve café ✓ 中文 🐍'\n",
        "marker = '<|endoftext|><|fim_middle|>'\n",  # literals of special tokens stay plain text
        "   \n\n\n        \n",
        "",
    ],
)
def test_round_trip_is_exact(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert not set(ids) & set(range(len(SPECIAL_TOKENS))), "user text must never produce special tokens"


def test_special_tokens_have_fixed_ids(tok):
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))


@pytest.mark.parametrize("line", ["return self.items.pop()", "raise IndexError", "self.items = []"])
def test_indentation_is_cheap(tok, line):
    # A run of indentation spaces is one token once BPE has seen it (the GPT-2 split keeps runs
    # of spaces together), so an indented line costs at most one token more than the bare line.
    for depth in (4, 8, 12):
        indented = "\n" + " " * depth + line
        assert len(tok.encode(indented)) <= len(tok.encode("\n" + line)) + 1, (depth, tok.encode(indented))
