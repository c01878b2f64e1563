"""The on-policy stage's verifier: would the language server show this output, and is it the slow one?

An output of the model for a hole in a file passes when
1. the server's clean-up keeps something of it (`clean_completion`: re-indent, cut what repeats the
   suffix or leaves the cursor's scope, no new syntax errors) — the same rules an editor sees;
2. the filled-in file parses without a syntax error (tree-sitter), when the file did before the
   hole was cut (`file_parses`): the clean-up alone lets an unfinished statement stand, as a user
   mid-typing needs, but a training file was finished;
3. it is code, not only a comment (the clean-up keeps a lone `#`, and a small model distilled on
   its own slow outputs learned to write `#` for every hole: it parses, and says nothing);
4. it is the slow decoding's output, or judged equivalent to it: the same text once whitespace is
   normalised, or the same Python AST for the whole filled-in file;
5. the caller's tests pass on the filled-in file, where the corpus has tests (`tests=`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..syntax.cleanup import clean_completion
from ..syntax.diagnostics import syntax_errors
from ..syntax.document import SyntaxDocument
from ..syntax.scope import completion_scope


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # "ok", or the first check that failed
    text: str  # the output after clean-up ("" when the clean-up kept nothing)


def usable(doc: SyntaxDocument, offset: int, model_text: str) -> tuple[str | None, str, int]:
    """(why the clean-up refuses it or None, the cleaned text, where it replaces up to)."""
    scope = completion_scope(doc, offset, invoked=True)
    cleaned = clean_completion(doc, offset, model_text, scope)
    return cleaned.rejected, cleaned.text, cleaned.replace_end


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _same_program(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError, RecursionError):
        return False


class Verifier:
    """Checks outputs for holes of one document (prefix + suffix); reuses its parse."""

    def __init__(
        self,
        prefix: str,
        suffix: str,
        language: str = "python",
        tests: Callable[[str], bool] | None = None,
        file_parses: bool = True,
    ):
        self.prefix, self.suffix, self.tests, self.language = prefix, suffix, tests, language
        self.doc = SyntaxDocument(prefix + suffix, language)
        self.offset = len(prefix)
        self.file_parses = file_parses

    def clean(self, model_text: str) -> tuple[str | None, str, int]:
        return usable(self.doc, self.offset, model_text)

    def filled(self, text: str, replace_end: int) -> str:
        return self.doc.text[: self.offset] + text + self.doc.text[replace_end:]

    def check(self, model_text: str, slow_text: str | None) -> Verdict:
        """Clean-up, syntax, agreement with `slow_text` (None: not checked), tests."""
        rejected, text, end = self.clean(model_text)
        if rejected is not None:
            return Verdict(False, f"clean-up: {rejected}", text if not rejected.startswith("nothing") else "")
        if self.language == "python" and all(
            not line.strip() or line.strip().startswith("#") for line in text.split("\n")
        ):
            return Verdict(False, "only a comment", text)
        if self.file_parses:
            errors = syntax_errors(SyntaxDocument(self.filled(text, end), self.language))
            if errors:
                return Verdict(False, f"syntax: {errors[0].message}", text)
        if slow_text is not None:
            slow_rejected, slow, slow_end = self.clean(slow_text)
            same = slow_rejected is None and (
                _normalised(text) == _normalised(slow)
                or _same_program(self.filled(text, end), self.filled(slow, slow_end))
            )
            if not same:
                return Verdict(False, "differs from the slow decoding", text)
        if self.tests is not None and not self.tests(self.filled(text, end)):
            return Verdict(False, "tests fail", text)
        return Verdict(True, "ok", text)
