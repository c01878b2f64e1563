"""Declaration-before-use plans: split regions into blocks and order them in waves.

Blocks in one wave do not depend on each other and can be decoded together (one batch); waves run
in order, so a block is generated after the blocks that declare the names it reads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import tree_sitter

from .document import SyntaxDocument
from .names import header_names, statement_names

# Definitions that a region holding just one of them is split into: header, then body statements.
_CONTAINERS = {
    "function_definition",
    "class_definition",  # python
    "function_declaration",
    "class_declaration",
    "method_definition",
    "function_expression",  # js/ts
    "method_declaration",  # go
    "function_item",
    "impl_item",
    "trait_item",
    "mod_item",  # rust
}
_CLASS_LIKE = {"class_definition", "class_declaration", "impl_item", "trait_item"}
# Lists of statements: a region holding one is split into its statements.
_STATEMENT_LISTS = {
    "block",
    "statement_block",
    "statement_list",
    "class_body",
    "declaration_list",
    "field_declaration_list",
}


@dataclass(frozen=True, eq=True)
class PlannedBlock:
    start: int  # character offsets; the blocks of a region cover it exactly, in source order
    end: int
    defines: set[str] = field(hash=False)
    uses: set[str] = field(hash=False)


@dataclass(frozen=True)
class BrokenLink:
    """A dependency dropped to break a cycle: `block` reads `names` declared by the later `depends_on`."""

    block: int
    depends_on: int
    names: tuple[str, ...]


@dataclass
class BlockPlan:
    blocks: list[PlannedBlock]
    waves: list[list[int]]  # block indices; every block is in exactly one wave
    cycles_broken: list[BrokenLink]
    depends_on: list[set[int]]  # kept dependencies per block (after cycle breaking)

    def wave_of(self) -> list[int]:
        where = [0] * len(self.blocks)
        for w, members in enumerate(self.waves):
            for b in members:
                where[b] = w
        return where


def plan_blocks(doc: SyntaxDocument, regions: list[tuple[int, int]]) -> BlockPlan:
    """Blocks for the regions (character ranges) of `doc`, with their def-use waves."""
    checked = _check_regions(doc, regions)
    blocks: list[PlannedBlock] = []
    for start, end in checked:
        blocks.extend(_split_region(doc, start, end))
    depends, reasons = _dependencies(blocks)
    broken = _break_cycles(depends, reasons)
    return BlockPlan(blocks, _waves(depends), broken, depends)


def _check_regions(doc: SyntaxDocument, regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ordered = sorted((int(s), int(e)) for s, e in regions)
    for s, e in ordered:
        if not 0 <= s <= e <= len(doc.text):
            raise ValueError(f"region [{s}, {e}) is outside the document (length {len(doc.text)})")
    ordered = [(s, e) for s, e in ordered if e > s]
    for (s1, e1), (s2, e2) in itertools.pairwise(ordered):
        if s2 < e1:
            raise ValueError(f"regions [{s1}, {e1}) and [{s2}, {e2}) overlap")
    return ordered


# ---- splitting ---------------------------------------------------------------------------------


def _split_region(doc: SyntaxDocument, start: int, end: int) -> list[PlannedBlock]:
    if doc.tree is None:
        return [PlannedBlock(start, end, set(), set())]
    bs, be = doc.byte_of(start), doc.byte_of(end)
    nodes = _statements_within(doc.tree.root_node, bs, be)
    statements = [n for n in nodes if "comment" not in n.type]
    # (node, what to read from it, in_class) per block
    pieces: list[tuple[tree_sitter.Node, str, bool]] = []
    if len(statements) == 1 and _definition(statements[0]).type in _CONTAINERS:
        definition = _definition(statements[0])
        body = definition.child_by_field_name("body")
        members = list(body.named_children) if body is not None else []
        if members:
            pieces.append((statements[0], "header", False))
            in_class = definition.type in _CLASS_LIKE
            nodes = members
            pieces += [(m, "statement", in_class) for m in members if "comment" not in m.type]
        else:
            pieces.append((statements[0], "statement", False))
    else:
        pieces = [(n, "statement", False) for n in statements]
    if not pieces:
        return [PlannedBlock(start, end, set(), set())]

    starts = _block_starts(doc, nodes, [p[0] for p in pieces], start)
    blocks = []
    for i, (node, part, in_class) in enumerate(pieces):
        b_start = start if i == 0 else starts[i]
        b_end = end if i == len(pieces) - 1 else starts[i + 1]
        if part == "header":
            names = header_names(_definition(node), doc.language)
        else:
            names = statement_names(node, doc.language, in_class)
        blocks.append(PlannedBlock(b_start, b_end, names.defines, names.uses))
    return blocks


def _definition(node: tree_sitter.Node) -> tree_sitter.Node:
    if node.type == "decorated_definition":
        inner = node.child_by_field_name("definition")
        if inner is not None:
            return inner
    return node


def _statements_within(root: tree_sitter.Node, bs: int, be: int) -> list[tree_sitter.Node]:
    """Outermost named nodes inside [bs, be), in order; nodes that only overlap are searched inside."""
    out = []
    stack = [iter(root.named_children)]  # explicit stack: trees of generated code can be deep
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif child.end_byte <= bs or child.start_byte >= be:
            continue
        elif bs <= child.start_byte and child.end_byte <= be and child.type not in _STATEMENT_LISTS:
            out.append(child)
        else:
            stack.append(iter(child.named_children))
    return out


def _block_starts(
    doc: SyntaxDocument, level_nodes: list[tree_sitter.Node], heads: list[tree_sitter.Node], region_start: int
) -> list[int]:
    """Where each block begins: at the start of its first line, or of the comment lines just above it.
    A head that is not among level_nodes (the header of a split definition) starts the region."""
    first_of: dict[int, tree_sitter.Node] = {}
    pending = None
    for n in level_nodes:
        if "comment" in n.type:
            own_line = not doc.text[
                doc.line_bounds(doc.offset_of(n.start_byte))[0] : doc.offset_of(n.start_byte)
            ].strip()
            if pending is None and own_line:
                pending = n
            continue
        first_of[n.id] = pending if pending is not None else n
        pending = None
    starts = []
    for head in heads:
        first = first_of.get(head.id)
        start = region_start if first is None else _line_start_if_blank_before(doc, doc.offset_of(first.start_byte))
        starts.append(max(start, region_start))
    return starts


def _line_start_if_blank_before(doc: SyntaxDocument, offset: int) -> int:
    line_start = doc.text.rfind("\n", 0, offset) + 1
    return line_start if not doc.text[line_start:offset].strip() else offset


# ---- ordering ----------------------------------------------------------------------------------


def _dependencies(blocks: list[PlannedBlock]) -> tuple[list[set[int]], dict[tuple[int, int], set[str]]]:
    declarers: dict[str, list[int]] = {}
    for i, block in enumerate(blocks):
        for name in block.defines:
            declarers.setdefault(name, []).append(i)
    depends: list[set[int]] = [set() for _ in blocks]
    reasons: dict[tuple[int, int], set[str]] = {}
    for u, block in enumerate(blocks):
        for name in block.uses:
            if name in block.defines:
                continue
            others = [d for d in declarers.get(name, ()) if d != u]
            if not others:
                continue
            earlier = [d for d in others if d < u]
            d = earlier[-1] if earlier else others[0]  # the declaration in force, else the first
            depends[u].add(d)
            reasons.setdefault((u, d), set()).add(name)
    return depends, reasons


def _break_cycles(depends: list[set[int]], reasons: dict[tuple[int, int], set[str]]) -> list[BrokenLink]:
    """Inside each cycle keep only links to earlier blocks (source order wins)."""
    broken = []
    for component in _strongly_connected(depends):
        if len(component) < 2:
            continue
        members = set(component)
        for u in sorted(component):
            for d in sorted(depends[u] & members):
                if d > u:
                    depends[u].discard(d)
                    broken.append(BrokenLink(u, d, tuple(sorted(reasons[(u, d)]))))
    return broken


def _strongly_connected(graph: list[set[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative (plans can hold thousands of blocks)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components = []
    counter = 0
    for root in range(len(graph)):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                components.append(component)
    return components


def _waves(depends: list[set[int]]) -> list[list[int]]:
    """Longest-path layering of the (now acyclic) dependency graph."""
    n = len(depends)
    users: list[list[int]] = [[] for _ in range(n)]
    missing = [len(d) for d in depends]
    for u, ds in enumerate(depends):
        for d in ds:
            users[d].append(u)
    wave = [0] * n
    ready = [u for u in range(n) if missing[u] == 0]
    while ready:
        d = ready.pop()
        for u in users[d]:
            wave[u] = max(wave[u], wave[d] + 1)
            missing[u] -= 1
            if missing[u] == 0:
                ready.append(u)
    assert all(m == 0 for m in missing), "dependency graph still has a cycle after breaking"
    out: list[list[int]] = [[] for _ in range(max(wave) + 1)] if n else []
    for u in range(n):
        out[wave[u]].append(u)
    return out
