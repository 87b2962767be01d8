"""docs/architecture.md is true: its module map and its rules, read from the page and checked against the code.

The page is the source of the expectations: a module added, moved or renamed makes this test fail until
the map says where it went, and a rule the code stops keeping fails here rather than misleading a reader.
Imports are read with :mod:`ast` (every ``import`` statement, also inside functions, but not those under
``if TYPE_CHECKING:``, which never run); nothing is imported except for the error-class rule.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "capillary_provider"
DOC = ROOT / "docs" / "architecture.md"
SANDBOX = "sandbox/"
"""The emulator has one row in the map (its own modules are described in docs/sandbox.md), so its modules
are not listed one by one; it is still covered by the rules (the HTTP clients, never imported by product code)."""

TICKED = re.compile(r"`([^`]+)`")


# -- reading the page ------------------------------------------------------------------------------------------


def section(title: str) -> str:
    """The text of the ``## title`` section of docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/architecture.md has no '## {title}' section"
    return match.group(1)


def map_rows() -> dict[str, str]:
    """The module map: ``{path relative to capillary_provider/: what the row says it owns}``."""
    rows = {}
    for line in section("Modules").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def rule(tag: str) -> str:
    """The bullet of the ``## Rules`` section that starts with ``**tag**``."""
    bullets = re.findall(r"^- (.*?)(?=^- |\Z)", section("Rules"), re.S | re.M)
    found = [bullet for bullet in bullets if bullet.startswith(f"**{tag}**")]
    assert len(found) == 1, f"docs/architecture.md's Rules have no single bullet starting with **{tag}**"
    return " ".join(found[0].split())


def paths_in(text: str) -> list[str]:
    """The modules (``x.py``) and packages (``x/``) a piece of the page names in backticks."""
    return [name for name in TICKED.findall(text) if name.endswith((".py", "/"))]


def libraries_in(text: str) -> list[str]:
    """The importable names (``requests``, ``http.client``) a piece of the page names in backticks."""
    return [name for name in TICKED.findall(text) if re.fullmatch(r"[a-z_][a-z0-9_.]*", name) and "/" not in name]


# -- reading the code -----------------------------------------------------------------------------------------


def code_modules() -> set[str]:
    """Every module of the package (path relative to capillary_provider/), save empty ``__init__.py`` files."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip():
            continue
        found.add(path.relative_to(PACKAGE).as_posix())
    return found


def dotted(module: str) -> str:
    """``hooks/_base.py`` -> ``capillary_provider.hooks._base`` (``x/__init__.py`` -> the package)."""
    parts = ["capillary_provider", *module.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def module_names() -> dict[str, str]:
    """``{dotted name: path}`` of every module, empty ``__init__.py`` files included (they are imported too)."""
    return {
        dotted(path.relative_to(PACKAGE).as_posix()): path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
    }


@cache
def tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / module).read_text(encoding="utf-8"))


def _type_checking_nodes(module: str) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


@cache
def imports(module: str, *, top_level_only: bool = False) -> frozenset[str]:
    """The dotted names one module imports (``from a import b`` gives ``a.b`` when ``b`` is our module)."""
    skipped = _type_checking_nodes(module)
    top = {id(node) for node in tree(module).body}
    package = dotted(module) if module.endswith("__init__.py") else dotted(module).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree(module)):
        if id(node) in skipped or (top_level_only and id(node) not in top):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in module_names() else base)
    return frozenset(found)


def our_imports(module: str, *, top_level_only: bool = False) -> set[str]:
    """The package's own modules that one module imports, as paths."""
    return {module_names()[name] for name in imports(module, top_level_only=top_level_only) if name in module_names()}


def within(module: str, place: str) -> bool:
    """Is ``module`` the module ``place``, or inside the package ``place`` (``x/``; ``capillary_provider/``: any)?"""
    return place == "capillary_provider/" or module == place or (place.endswith("/") and module.startswith(place))


def imports_library(module: str, libraries: list[str], *, top_level_only: bool = False) -> list[str]:
    names = imports(module, top_level_only=top_level_only)
    return sorted(name for name in names for lib in libraries if name == lib or name.startswith(f"{lib}."))


@cache
def definitions() -> dict[str, dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]]]:
    """``{name: {module: [definitions]}}``: module-level functions and classes, and the methods of classes."""
    found: dict[str, dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]]] = {}
    for module in module_names().values():
        if module.startswith(SANDBOX):
            continue
        for node in tree(module).body:
            inner = node.body if isinstance(node, ast.ClassDef) else []
            for item in [node, *inner]:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    found.setdefault(item.name, {}).setdefault(module, []).append(item)
    return found


# -- the module map -------------------------------------------------------------------------------------------


def test_every_module_of_the_package_is_in_the_map() -> None:
    listed = set(map_rows())
    missing = sorted(m for m in code_modules() if m not in listed and not m.startswith(SANDBOX))
    assert missing == [], f"modules missing from docs/architecture.md's map: {missing}"


def test_every_module_in_the_map_exists() -> None:
    gone = sorted(m for m in map_rows() if m != SANDBOX and m not in code_modules())
    assert gone == [], f"docs/architecture.md's map lists modules that do not exist: {gone}"
    assert (PACKAGE / SANDBOX).is_dir()


def test_the_names_a_row_gives_are_defined_in_that_module() -> None:
    """A function or class of ours named in a module's row (`UploadJob`, `JobWatch.assess()`) lives there."""
    wrong = []
    for module, owns in map_rows().items():
        if module == SANDBOX:
            continue
        for ticked in TICKED.findall(owns):
            # a call (`summarize()`, `JobWatch.assess()`) or a class (`UploadJob`); a bare lower-case word
            # (`retry_after`, `source`) is a parameter or an attribute, not a claim about where code lives
            name = re.match(r"([A-Za-z_]\w*)(?:\.\w+)*\(.*\)$|([A-Z]\w*[a-z]\w*)$", ticked)
            defined = name and (name.group(1) or name.group(2))
            if defined and defined in definitions() and module not in definitions()[defined]:
                wrong.append(f"`{ticked}` in the row of {module}, defined in {sorted(definitions()[defined])}")
    assert wrong == []


def _accepts(definition: ast.AST, given: list[str]) -> bool:
    """Would a call with these arguments (``"x"`` positional, ``"name=x"`` keyword) bind to this definition?"""
    if isinstance(definition, ast.ClassDef):
        init = [item for item in definition.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"]
        return _accepts(init[0], given) if init else True
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    args = definition.args
    positional = [*args.posonlyargs, *args.args]
    if positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    keywords = {arg.partition("=")[0].strip() for arg in given if "=" in arg}
    count = len(given) - len(keywords)
    named = {arg.arg for arg in [*positional[count:], *args.kwonlyargs]}
    required = {arg.arg for arg in positional[count : len(positional) - len(args.defaults)]}
    required |= {arg.arg for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None}
    fits = count <= len(positional) or args.vararg is not None
    return fits and (keywords <= named or args.kwarg is not None) and required <= keywords


def test_the_data_flow_calls_our_functions_with_as_many_arguments_as_they_take() -> None:
    """`batch_file_name(ti, part, file)` for a function of five or six parameters is a stale map."""
    from airflow.sdk import BaseOperator

    flow = re.search(r"```\n(.*?)```", section("Data flow"), re.S)
    assert flow, "docs/architecture.md's Data flow has no diagram"
    calls = re.findall(r"([A-Za-z_][\w.]*)\(([^()]*)\)", flow.group(1))
    assert len(calls) >= 5, calls  # the diagram was read
    wrong = []
    for called, arguments in calls:
        name = called.rpartition(".")[2]
        given = [arg.strip() for arg in arguments.split(",") if arg.strip()]
        if name in definitions():
            found = [d for ds in definitions()[name].values() for d in ds]
            if "..." not in arguments and not any(_accepts(definition, given) for definition in found):
                wrong.append(f"{called}({arguments}) does not fit its definition")
        elif not hasattr(BaseOperator, name):
            wrong.append(f"{called}(): neither ours nor Airflow's BaseOperator's")
    assert wrong == []


# -- the rules ------------------------------------------------------------------------------------------------


def test_http_clients_are_imported_only_where_the_rules_say() -> None:
    text = rule("HTTP clients")
    libraries, allowed = libraries_in(text), set(paths_in(text))
    assert {"requests", "urllib3"} <= set(libraries), text
    importers = {m for m in module_names().values() if imports_library(m, libraries)}
    assert importers == allowed, f"modules importing {libraries}: {sorted(importers)}"


def test_the_event_loop_modules_load_no_http_client_through_anything_they_import() -> None:
    """Module-level imports, followed through our own modules: what the triggerer loads on its event loop."""
    libraries = libraries_in(rule("HTTP clients"))
    starts = paths_in(rule("Event loop"))
    assert "triggers/coupon_upload.py" in starts
    for start in starts:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            assert imports_library(module, libraries, top_level_only=True) == [], f"{start} loads {module}"
            todo.extend(our_imports(module, top_level_only=True))


def test_every_error_class_is_in_the_errors_module_save_the_ones_the_rules_name() -> None:
    text = rule("Errors")
    home = paths_in(text)[0]
    named = dict(re.findall(r"`(\w+)` \(in `([\w/]+\.py)`", text))
    found = {}
    for module in sorted(code_modules() - {home}):
        if module.startswith(SANDBOX):
            continue
        loaded = importlib.import_module(dotted(module))
        for name, value in vars(loaded).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == loaded.__name__:
                found[name] = module
    assert found == named
    errors = importlib.import_module(dotted(home))
    assert any(inspect.isclass(v) and issubclass(v, BaseException) for v in vars(errors).values())


def _layer_rules() -> list[tuple[list[str], list[str]]]:
    """``(subjects, objects)`` of each "`a/`, `b.py` import(s) nothing from `c/`, `d.py`" of the Layers bullet."""
    pairs = []
    for sentence in rule("Layers").split(";"):
        subjects, verb, objects = re.split(r"(imports? nothing from)", sentence)
        assert verb, sentence
        pairs.append((paths_in(subjects), paths_in(objects)))
    return pairs


def test_the_layers_rule_was_read() -> None:
    rules = _layer_rules()
    assert len(rules) >= 6, rules
    assert all(subjects and objects for subjects, objects in rules), rules


@pytest.mark.parametrize(("subjects", "objects"), _layer_rules(), ids=lambda names: "+".join(names))
def test_what_imports_what(subjects: list[str], objects: list[str]) -> None:
    wrong = []
    for module in sorted(module_names().values()):
        if any(within(module, s) for s in subjects) and not any(within(module, o) for o in objects):
            wrong += [
                f"{module} imports {other}" for other in our_imports(module) if any(within(other, o) for o in objects)
            ]
    assert wrong == []


def test_no_import_circle_among_module_level_imports() -> None:
    assert rule("No import circle")
    graph = {m: our_imports(m, top_level_only=True) - {m} for m in module_names().values()}
    # a package's __init__ importing its own modules is how a package re-exports: not a circle
    for module, targets in graph.items():
        if module.endswith("__init__.py"):
            graph[module] = {t for t in targets if not within(t, module.removesuffix("__init__.py"))}
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                circles.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []
