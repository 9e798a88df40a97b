"""Files into chunks and symbols. Languages with a tree-sitter grammar wheel are cut at definitions (a function, a
class small enough to stay whole, the methods of a larger one); what lies between definitions, and every other
language, is cut into line windows. Definitions and call sites become the symbols table."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from tree_sitter import Language, Node, Parser

MAX_CHUNK_LINES = 60  # a definition longer than this is cut into windows
WINDOW_LINES = 50  # the line windows for everything that is not a definition
MAX_CHUNK_CHARS = 8000  # a chunk of very long lines is cut short


@dataclass(frozen=True)
class Chunk:
    start_line: int  # 1-based, inclusive
    end_line: int
    kind: str  # function | class | method | type | block | window
    symbol: str  # qualified name for definitions ("Class.method"), "" otherwise
    text: str


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # "def" or "ref"
    line: int  # 1-based


@dataclass(frozen=True)
class _Grammar:
    module: str
    entry: str
    # node type -> chunk kind, for definitions
    definitions: dict[str, str]
    # definition node types whose body holds further definitions (classes, impls, modules)
    containers: frozenset[str]
    # call node type -> field holding the callee
    calls: dict[str, str]


_PY = _Grammar(
    "tree_sitter_python",
    "language",
    {"function_definition": "function", "class_definition": "class"},
    frozenset({"class_definition"}),
    {"call": "function"},
)
_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    "abstract_class_declaration": "class",
    "interface_declaration": "type",
    "type_alias_declaration": "type",
    "enum_declaration": "type",
}
_JS_CONTAINERS = frozenset({"class_declaration", "abstract_class_declaration"})
_JS_CALLS = {"call_expression": "function", "new_expression": "constructor"}
GRAMMARS = {
    "python": _PY,
    "javascript": _Grammar("tree_sitter_javascript", "language", _JS_DEFS, _JS_CONTAINERS, _JS_CALLS),
    "typescript": _Grammar("tree_sitter_typescript", "language_typescript", _JS_DEFS, _JS_CONTAINERS, _JS_CALLS),
    "tsx": _Grammar("tree_sitter_typescript", "language_tsx", _JS_DEFS, _JS_CONTAINERS, _JS_CALLS),
    "go": _Grammar(
        "tree_sitter_go",
        "language",
        {"function_declaration": "function", "method_declaration": "method", "type_declaration": "type"},
        frozenset(),
        {"call_expression": "function"},
    ),
    "rust": _Grammar(
        "tree_sitter_rust",
        "language",
        {
            "function_item": "function",
            "impl_item": "class",
            "trait_item": "type",
            "struct_item": "type",
            "enum_item": "type",
            "mod_item": "class",
            "macro_definition": "function",
        },
        frozenset({"impl_item", "trait_item", "mod_item"}),
        {"call_expression": "function", "macro_invocation": "macro"},
    ),
}
_NAME_NODES = frozenset(
    {
        "identifier",
        "property_identifier",
        "type_identifier",
        "field_identifier",
        "private_property_identifier",
        "constant",
    }
)


@cache
def _parser(language: str) -> Parser | None:
    g = GRAMMARS.get(language)
    if g is None:
        return None
    try:
        lang = Language(getattr(importlib.import_module(g.module), g.entry)())
    except (ImportError, AttributeError, ValueError):
        return None  # the grammar wheel is missing or incompatible: line windows instead
    return Parser(lang)


def syntax_error(text: str, language: str) -> str | None:
    """Where tree-sitter finds the first syntax error in text ("line N: ..."), None when it parses, or when there
    is no grammar for the language (nothing to check with)."""
    parser = _parser(language)
    if parser is None:
        return None
    root = parser.parse(text.encode("utf-8", "surrogatepass")).root_node
    if not root.has_error:
        return None
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            return f"line {node.start_point[0] + 1}: missing {node.type}"
        if node.type == "ERROR":
            return f"line {node.start_point[0] + 1}: unexpected {_text(node)[:40]!r}"
        stack.extend(reversed([c for c in node.children if c.has_error or c.is_missing]))
    return "it does not parse"


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text is not None else ""


def _name_of(node: Node) -> str:
    if node.type == "type_declaration":  # Go: type X struct {...}
        spec = next((c for c in node.named_children if c.type == "type_spec"), None)
        return _text(spec.child_by_field_name("name")) if spec else ""
    if node.type == "impl_item":  # Rust: impl Trait for Type / impl Type
        return _text(node.child_by_field_name("type"))
    return _text(node.child_by_field_name("name"))


def _callee(node: Node, field: str) -> str:
    """The called name: `f` of f(x), `m` of a.b.m(x), `T` of new T()."""
    target = node.child_by_field_name(field)
    if node.type == "macro_invocation":
        target = node.child_by_field_name("macro")
    while target is not None and target.type not in _NAME_NODES:
        named = target.named_children
        nxt = (
            target.child_by_field_name("attribute")
            or target.child_by_field_name("property")
            or target.child_by_field_name("field")
            or target.child_by_field_name("name")
            or (named[-1] if named else None)
        )
        target = nxt if nxt is not target else None
    return _text(target)


def _definition(node: Node, g: _Grammar) -> Node | None:
    """The definition a statement stands for: itself, a decorated/exported definition, `const f = () => ...`."""
    if node.type in g.definitions:
        return node
    if node.type in ("decorated_definition", "export_statement"):
        inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
        if inner is not None and inner.type in g.definitions:
            return inner
    if node.type in ("lexical_declaration", "variable_declaration") and len(node.named_children) == 1:
        decl = node.named_children[0]
        value = decl.child_by_field_name("value")
        if value is not None and value.type in ("arrow_function", "function_expression", "function"):
            return decl
    return None


def _body_children(node: Node) -> list[Node]:
    body = node.child_by_field_name("body")
    return list(body.named_children) if body is not None else list(node.named_children)


class _Cutter:
    def __init__(self, lines: list[str], g: _Grammar) -> None:
        self.lines, self.g = lines, g
        self.chunks: list[Chunk] = []
        self.symbols: list[Symbol] = []
        self.owner = [""] * (len(lines) + 2)  # per line: None when inside a definition chunk, else container name
        self.covered = [False] * (len(lines) + 2)

    def visit(self, nodes: list[Node], container: str) -> None:
        for statement in nodes:
            node = _definition(statement, self.g)
            if node is None:
                continue
            name = _name_of(node) or "<anonymous>"
            qualified = f"{container}.{name}" if container else name
            kind = self.g.definitions.get(node.type, "function")
            if container and kind == "function":
                kind = "method"
            first, last = statement.start_point.row + 1, statement.end_point.row + 1
            self.symbols.append(Symbol(name, "def", node.start_point.row + 1))
            if last - first + 1 > MAX_CHUNK_LINES and node.type in self.g.containers:
                for i in range(first, last + 1):
                    self.owner[i] = qualified
                self.visit(_body_children(node), qualified)
            else:
                for a in range(first, last + 1, MAX_CHUNK_LINES):
                    self.emit(a, min(last, a + MAX_CHUNK_LINES - 1), kind, qualified)
                if node.type in self.g.containers:
                    self.nested_definitions(_body_children(node))

    def nested_definitions(self, nodes: list[Node]) -> None:
        """The methods of a class kept whole are symbols too (their chunk is the class's)."""
        for statement in nodes:
            node = _definition(statement, self.g)
            if node is not None:
                self.symbols.append(Symbol(_name_of(node) or "<anonymous>", "def", node.start_point.row + 1))
                if node.type in self.g.containers:
                    self.nested_definitions(_body_children(node))

    def emit(self, a: int, b: int, kind: str, symbol: str) -> None:
        text = "\n".join(self.lines[a - 1 : b])
        if text.strip():
            self.chunks.append(Chunk(a, b, kind, symbol, text[:MAX_CHUNK_CHARS]))
        for i in range(a, b + 1):
            self.covered[i] = True

    def gaps(self) -> None:
        """Lines outside definition chunks, in windows that never mix two containers."""
        n = len(self.lines)
        i = 1
        while i <= n:
            if self.covered[i]:
                i += 1
                continue
            owner, j = self.owner[i], i
            while j + 1 <= n and not self.covered[j + 1] and self.owner[j + 1] == owner and j + 1 - i < WINDOW_LINES:
                j += 1
            text = "\n".join(self.lines[i - 1 : j])
            if text.strip():
                self.chunks.append(Chunk(i, j, "class" if owner else "block", owner, text[:MAX_CHUNK_CHARS]))
            i = j + 1

    def calls(self, root: Node) -> None:
        stack = [root]
        while stack:
            node = stack.pop()
            field = self.g.calls.get(node.type)
            if field is not None:
                name = _callee(node, field)
                if name:
                    self.symbols.append(Symbol(name, "ref", node.start_point.row + 1))
            stack.extend(node.named_children)


def line_windows(text: str) -> list[Chunk]:
    lines = text.split("\n")
    out = []
    for a in range(0, len(lines), WINDOW_LINES):
        body = "\n".join(lines[a : a + WINDOW_LINES])
        if body.strip():
            out.append(Chunk(a + 1, min(len(lines), a + WINDOW_LINES), "window", "", body[:MAX_CHUNK_CHARS]))
    return out


def chunk_file(text: str, language: str | None) -> tuple[list[Chunk], list[Symbol]]:
    """Chunks in line order, and the file's symbols (definitions and call sites)."""
    parser = _parser(language) if language else None
    if parser is None:
        return line_windows(text), []
    g = GRAMMARS[language]  # type: ignore[index]
    tree = parser.parse(text.encode("utf-8"))
    cutter = _Cutter(text.split("\n"), g)
    cutter.visit(list(tree.root_node.named_children), "")
    cutter.gaps()
    cutter.calls(tree.root_node)
    cutter.chunks.sort(key=lambda c: c.start_line)
    return cutter.chunks, cutter.symbols
