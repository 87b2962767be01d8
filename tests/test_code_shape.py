"""The product code keeps its shape: no module over 300 lines, no function over 50, no import circle.

Measured over ``capillary_provider`` without ``sandbox/`` (an emulator, not the product). The few
functions allowed to be longer are named below with the reason; each must still need its exception,
so the list cannot go stale.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "capillary_provider"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50
LONG_FUNCTIONS_ALLOWED = {
    "get_provider_info.get_provider_info": "a literal of data: the provider metadata Airflow reads",
    "operators._base.BaseUploadOperator.__init__": "a constructor that only stores its (many) parameters",
}
"""``module.qualified_name`` -> why it may exceed :data:`MAX_FUNCTION_LINES`."""
NOT_SPLIT_YET: set[str] = set()
"""Modules and functions over the limits that issue 20 has still to split (a ratchet: it may only shrink;
an entry split in the meantime fails the test until it is removed)."""


def _product_modules() -> dict[str, Path]:
    """Dotted name (without the ``capillary_provider.`` prefix) -> file, sandbox excluded."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "sandbox":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _functions(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, int]]:
    """Every function (methods and nested functions too) with its qualified name and its length in lines."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from _functions(node.body, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")


def _module_imports(body: list[ast.stmt], module: str, is_package: bool) -> Iterator[str]:
    """What a module imports at module level, ``if TYPE_CHECKING:`` blocks included: two modules that need
    each other even for type hints are one job split in two. Imports inside functions are left out."""
    for node in body:
        if isinstance(node, ast.If):
            for block in (node.body, node.orelse):
                yield from _module_imports(block, module, is_package)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_imports(block, module, is_package)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["capillary_provider", *module.split(".")] if module else ["capillary_provider"]
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)  # `from package import module`


def _import_graph() -> dict[str, set[str]]:
    modules = _product_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = _module_imports(tree.body, name, path.name == "__init__.py")
        local = {t.removeprefix("capillary_provider.") for t in targets if t.startswith("capillary_provider.")}
        graph[name] = {t for t in local if t in modules and t != name and not name.startswith(f"{t}.")}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_module_is_over_300_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _product_modules().items()}
    over = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert {name: n for name, n in over.items() if name not in NOT_SPLIT_YET} == {}
    assert set(over) == NOT_SPLIT_YET & set(sizes), "a module split since: remove it from NOT_SPLIT_YET"


def test_no_function_is_over_50_lines_but_the_named_exceptions() -> None:
    lengths = {}
    for module, path in _product_modules().items():
        for name, lines in _functions(ast.parse(path.read_text(encoding="utf-8")).body, f"{module}."):
            lengths[name] = lines
    long = {name: lines for name, lines in lengths.items() if lines > MAX_FUNCTION_LINES}
    allowed = set(LONG_FUNCTIONS_ALLOWED) | NOT_SPLIT_YET
    assert {name: lines for name, lines in long.items() if name not in allowed} == {}
    assert set(long) == allowed & set(lengths), "an exception no longer needed: remove it from the list"


def test_no_import_circle() -> None:
    graph = _import_graph()
    assert graph["operators.coupon_upload"], "the graph sees the package's own imports"
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
