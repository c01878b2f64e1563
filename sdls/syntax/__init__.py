"""Tree-sitter syntax layer: what the model's tokens mean in the file.

Pure (no LSP, no model). Offsets are Python str character offsets into the document text.
Unknown languages get plain-text behaviour: no tree, no syntax features, never an error.

Code map:
- document.py   SyntaxDocument (text + tree, incremental reparse, char/byte offsets), language_for
- scope.py      completion_scope: none / line / block at the cursor, replaceable closers, indent
- cleanup.py    clean_completion: re-indent, cut repeats of the suffix, stop at leaving the scope
- verify.py     does a candidate add syntax errors (used by cleanup)
- lexical.py    brackets outside strings/comments, indentation unit (for fragments that do not parse)
- plan.py       plan_blocks: blocks, def-use links, waves, cycle breaking
- names.py      declared / read names per statement (scope-aware for Python)
- diagnostics.py syntax_errors, find_holes
- bench_syntax.py  `sdls bench syntax`
"""

from .cleanup import Cleaned, clean_completion
from .diagnostics import Hole, SyntaxIssue, find_holes, syntax_errors
from .document import SyntaxDocument, language_for
from .plan import BlockPlan, BrokenLink, PlannedBlock, plan_blocks
from .scope import CompletionScope, completion_scope

__all__ = [
    "BlockPlan",
    "BrokenLink",
    "Cleaned",
    "CompletionScope",
    "Hole",
    "PlannedBlock",
    "SyntaxDocument",
    "SyntaxIssue",
    "clean_completion",
    "completion_scope",
    "find_holes",
    "language_for",
    "plan_blocks",
    "syntax_errors",
]
