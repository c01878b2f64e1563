"""Tree-sitter syntax layer: what the model's tokens mean in the file.

Pure (no LSP, no model). Offsets are Python str character offsets into the document text.
Unknown languages get plain-text behaviour: no tree, no syntax features, never an error.
"""
from .cleanup import Cleaned, clean_completion
from .diagnostics import Hole, SyntaxIssue, find_holes, syntax_errors
from .document import SyntaxDocument, language_for
from .plan import BlockPlan, BrokenLink, PlannedBlock, plan_blocks
from .scope import CompletionScope, completion_scope

__all__ = [
    "SyntaxDocument", "language_for",
    "CompletionScope", "completion_scope",
    "Cleaned", "clean_completion",
    "BlockPlan", "PlannedBlock", "BrokenLink", "plan_blocks",
    "SyntaxIssue", "syntax_errors", "Hole", "find_holes",
]
