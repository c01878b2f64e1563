"""Which names a piece of code declares and which it reads (for declaration-before-use plans).

Python gets a scope-aware reading: names bound inside a nested function, lambda or comprehension
are not reads of the outer names, `self.x = ...` declares `self.x` and reading `self.x` uses it.
Other languages get a lighter reading from declaration nodes and identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tree_sitter

Node = tree_sitter.Node


@dataclass
class Names:
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)


def _text(node: Node | None) -> str:
    return "" if node is None else (node.text or b"").decode("utf-8", errors="replace")


def statement_names(node: Node, language: str, in_class: bool = False) -> Names:
    """Names declared at this statement's level and names it reads (anywhere inside)."""
    if language == "python":
        return _py_statement(node, in_class)
    return _generic_statement(node, language)


def header_names(node: Node, language: str) -> Names:
    """A definition's header only: its name and parameters are declared; decorators, bases,
    defaults and annotations are read. The body is planned separately."""
    names = Names()
    name = node.child_by_field_name("name")
    if name is not None:
        names.defines.add(_text(name))
    if language == "python":
        for child in node.children:
            if child.type == "parameters":
                names.defines |= _py_parameter_names(child)
                _py_reads(child, set(), names.uses, params=True)
            elif child.type in ("argument_list", "type", "decorator"):
                _py_reads(child, set(), names.uses)
        if node.parent is not None and node.parent.type == "decorated_definition":
            for deco in node.parent.children_by_field_name("decorator") or [
                c for c in node.parent.children if c.type == "decorator"
            ]:
                _py_reads(deco, set(), names.uses)
        return names
    params = node.child_by_field_name("parameters")
    if params is not None:
        names.defines |= {_text(n) for n in _identifiers(params)}
    return names


# ---- Python ------------------------------------------------------------------------------------

_PY_SCOPES = {
    "function_definition",
    "lambda",
    "list_comprehension",
    "set_comprehension",
    "dictionary_comprehension",
    "generator_expression",
    "class_definition",
}
_PY_COMPOUND = {
    "if_statement",
    "elif_clause",
    "else_clause",
    "for_statement",
    "while_statement",
    "try_statement",
    "except_clause",
    "except_group_clause",
    "finally_clause",
    "with_statement",
    "match_statement",
    "case_clause",
    "block",
    "decorated_definition",
}


def _py_statement(node: Node, in_class: bool) -> Names:
    names = Names()
    bound = _py_level_bindings(node)
    names.defines = {f"self.{n}" for n in bound} if in_class else set(bound)
    _py_reads(node, set(), names.uses, self_attributes=names.defines)
    return names


def _py_level_bindings(node: Node) -> set[str]:
    """Names a statement binds in the scope it runs in (not inside nested functions/classes)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        t = n.type
        if t in ("function_definition", "class_definition"):
            out.add(_text(n.child_by_field_name("name")))
            continue  # its body is another scope
        if t == "augmented_assignment":  # `x += 1` needs an earlier declaration; it is not one
            continue
        if t == "assignment":
            out |= _py_targets(n.child_by_field_name("left"))
            right = n.child_by_field_name("right")
            if right is not None and right.type in ("assignment",):
                stack.append(right)  # a = b = 1
            continue
        if t in ("for_statement", "for_in_clause"):
            out |= _py_targets(n.child_by_field_name("left"))
        elif t == "named_expression":
            out.add(_text(n.child_by_field_name("name")))
        elif t == "as_pattern_target":
            out |= _py_targets(n)
            continue
        elif t == "import_statement":
            for name in n.children_by_field_name("name"):
                out.add(_import_alias(name, top_level=True))
            continue
        elif t == "import_from_statement":
            for name in n.children_by_field_name("name"):
                out.add(_import_alias(name, top_level=False))
            continue
        elif t in _PY_SCOPES:
            continue
        stack.extend(c for c in n.children if c.is_named)
    out.discard("")
    return out


def _import_alias(node: Node, top_level: bool) -> str:
    if node.type == "aliased_import":
        return _text(node.child_by_field_name("alias"))
    dotted = _text(node)
    # `import a.b` binds `a`; `from m import a` binds `a`
    return dotted.split(".")[0] if top_level else dotted.split(".")[-1]


def _py_targets(node: Node | None) -> set[str]:
    """Plain names bound by an assignment target (tuples and stars unpacked, attributes skipped)."""
    if node is None:
        return set()
    if node.type == "identifier":
        return {_text(node)}
    if node.type in ("attribute", "subscript"):
        return set()
    out: set[str] = set()
    for child in node.named_children:
        out |= _py_targets(child)
    return out


def _py_parameter_names(params: Node) -> set[str]:
    out: set[str] = set()
    for p in params.named_children:
        if p.type == "identifier":
            out.add(_text(p))
        elif p.type in ("default_parameter", "typed_default_parameter"):
            out.add(_text(p.child_by_field_name("name")))
        elif p.type in ("typed_parameter", "list_splat_pattern", "dictionary_splat_pattern"):
            ident = next((c for c in p.named_children if c.type == "identifier"), None)
            if ident is not None:
                out.add(_text(ident))
    out.discard("")
    return out


def _py_reads(
    root: Node, local: set[str], uses: set[str], params: bool = False, self_attributes: set[str] | None = None
) -> None:
    """Add every name read under `root` that is not bound in an enclosing nested scope; with
    `self_attributes`, also collect `self.x` for every `self.x = ...` on the way (one walk, not two).

    An explicit stack, not recursion: generated code can nest expressions thousands deep."""
    # (node, names bound by enclosing nested scopes, how to read it: "load" | "params" | "store")
    stack: list[tuple[Node, set[str], str]] = [(root, local, "params" if params else "load")]
    while stack:
        node, bound, mode = stack.pop()
        t = node.type
        push = stack.append
        if mode == "params" or t in ("parameters", "lambda_parameters"):
            # parameter names are bindings; defaults and annotations are reads
            for p in node.named_children:
                for field_name in ("value", "type"):
                    part = p.child_by_field_name(field_name)
                    if part is not None:
                        push((part, bound, "load"))
            continue
        if mode == "store":  # inside an assignment target: `a[i] = ...` reads a and i, `a.b = ...` reads a
            if t == "attribute":
                obj = node.child_by_field_name("object")
                if obj is not None and obj.type == "identifier" and _text(obj) == "self":
                    if self_attributes is not None:
                        self_attributes.add(f"self.{_text(node.child_by_field_name('attribute'))}")
                elif obj is not None:
                    push((obj, bound, "load"))
            elif t == "subscript":
                push((node, bound, "load"))
            elif t != "identifier":
                stack.extend((c, bound, "store") for c in node.named_children)
            continue
        if t == "identifier":
            name = _text(node)
            if name not in bound:
                uses.add(name)
        elif t in _PY_NOT_READS:
            pass
        elif t == "attribute":
            obj = node.child_by_field_name("object")
            if obj is not None and obj.type == "identifier" and _text(obj) == "self":
                uses.add(f"self.{_text(node.child_by_field_name('attribute'))}")
            elif obj is not None:
                push((obj, bound, "load"))
        elif t == "keyword_argument":
            _push_field(stack, node, "value", bound)
        elif t in ("assignment", "augmented_assignment"):
            left = node.child_by_field_name("left")
            if left is not None:  # `x += 1` reads x
                push((left, bound, "load" if t == "augmented_assignment" else "store"))
            _push_field(stack, node, "right", bound)
            _push_field(stack, node, "type", bound)
        elif t in ("for_statement", "for_in_clause"):
            left = node.child_by_field_name("left")
            for child in node.named_children:
                push((child, bound, "store" if child == left else "load"))
        elif t == "named_expression":
            _push_field(stack, node, "value", bound)
        elif t in ("function_definition", "lambda"):
            params_node = node.child_by_field_name("parameters")
            inner = set(bound)
            if params_node is not None:
                inner |= _py_parameter_names(params_node)
                push((params_node, bound, "params"))
            _push_field(stack, node, "return_type", bound)
            body = node.child_by_field_name("body")
            if body is not None:
                inner |= _py_level_bindings(body)
                push((body, inner, "load"))
        elif t in _PY_COMPREHENSIONS:
            inner = set(bound)
            for clause in node.named_children:
                if clause.type == "for_in_clause":
                    inner |= _py_targets(clause.child_by_field_name("left"))
            stack.extend((c, inner, "load") for c in node.named_children)
        elif t == "class_definition":
            name = node.child_by_field_name("name")
            stack.extend((c, bound, "load") for c in node.named_children if c != name)
        else:
            stack.extend((c, bound, "load") for c in node.named_children)


_PY_NOT_READS = {
    "import_statement",
    "import_from_statement",
    "global_statement",
    "nonlocal_statement",
    "comment",
    "string_content",
    "escape_sequence",
    "as_pattern_target",
}
_PY_COMPREHENSIONS = {"list_comprehension", "set_comprehension", "dictionary_comprehension", "generator_expression"}


def _push_field(stack: list, node: Node, field_name: str, bound: set[str]) -> None:
    part = node.child_by_field_name(field_name)
    if part is not None:
        stack.append((part, bound, "load"))


# ---- other languages (lighter) -----------------------------------------------------------------

_IDENTIFIERS = {
    "identifier",
    "type_identifier",
    "shorthand_property_identifier",
    "field_identifier",
    "property_identifier",
}
_FUNCTION_BODIES = {"statement_block", "block", "function_body"}
_DECLARATION_HINTS = ("declaration", "definition", "declarator", "_item", "_spec", "function")
_READ_ONLY_IDENTIFIERS = {"property_identifier", "field_identifier"}  # `a.b`: only `a` is a name


def _identifiers(node: Node) -> list[Node]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if n.type in ("identifier", "type_identifier", "shorthand_property_identifier_pattern"):
            out.append(n)
        stack.extend(n.named_children)
    return out


def _generic_statement(node: Node, language: str) -> Names:
    names = Names()
    declared_nodes: set[int] = set()
    # declarations at this level (not inside nested bodies)
    stack = [(node, False)]
    while stack:
        n, nested = stack.pop()
        if not nested and any(h in n.type for h in _DECLARATION_HINTS):
            target = n.child_by_field_name("name") or n.child_by_field_name("pattern")
            if target is None and n.type in ("short_var_declaration", "variable_declaration", "assignment_statement"):
                target = n.child_by_field_name("left") or (n.named_children[0] if n.named_children else None)
            if target is not None:
                if target.type in _IDENTIFIERS or "identifier" in target.type:
                    names.defines.add(_text(target))
                    declared_nodes.add(target.id)
                else:
                    for ident in _identifiers(target):
                        names.defines.add(_text(ident))
                        declared_nodes.add(ident.id)
        for child in n.named_children:
            is_body = n.child_by_field_name("body") is not None and child == n.child_by_field_name("body")
            stack.append((child, nested or is_body))
    # reads: identifiers that are not declarations, nor parameters, nor member names
    parameters: set[str] = set()
    stack2 = [node]
    while stack2:
        n = stack2.pop()
        params = n.child_by_field_name("parameters")
        if params is not None:
            parameters |= {_text(i) for i in _identifiers(params)}
        if n.type in _IDENTIFIERS and n.id not in declared_nodes and n.type not in _READ_ONLY_IDENTIFIERS:
            names.uses.add(_text(n))
        if n.type in ("member_expression", "field_expression", "selector_expression", "dot_index_expression"):
            obj = n.named_children[0] if n.named_children else None
            if obj is not None and obj.type in ("this", "self"):
                names.uses.add(_text(n))
        stack2.extend(n.named_children)
    names.uses -= parameters
    names.uses.discard("")
    names.defines.discard("")
    return names
