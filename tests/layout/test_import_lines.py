"""The layout's rules, checked on the source: bot/ crosses into the control plane only through its public line,
records do not talk, there are no import cycles, and a long module says why it is long."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("bot", "orchestrator", "agents", "connectors", "memory")
# The record layer: modules that own a table. They change rows and return what changed; what the operator
# is told, and which messages go out, is decided above them.
RECORDS = ("intents", "runs", "steps", "approvals", "audit", "outbox", "agent_calls")
LONG_MODULE_LINES = 400
LONG_BECAUSE = "Long because:"


def modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, name: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) for every import in the file, lazy and TYPE_CHECKING ones included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield node.lineno, base, [alias.name for alias in node.names]


def public_names() -> set[str]:
    tree = ast.parse((ROOT / "orchestrator" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            return set(ast.literal_eval(node.value))
    raise AssertionError("orchestrator/__init__.py names no __all__")


def test_bot_imports_only_what_the_control_plane_exports() -> None:
    """Fails on a new `from orchestrator.x import …` in bot/, or a name orchestrator/__init__.py does not offer."""
    offered = public_names()
    crossings = []
    for name, path in modules().items():
        if not name.startswith("bot"):
            continue
        for line, module, names in imports(path, name):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module.startswith("orchestrator."):
                crossings.append(f"{where} imports {module}")
            elif module == "orchestrator":
                crossings += [f"{where} imports {n}, not in orchestrator.__all__" for n in names if n not in offered]
    assert crossings == []


def test_no_record_module_imports_words_or_the_outbox() -> None:
    talking = []
    for record in RECORDS:
        name = f"orchestrator.{record}"
        for line, module, names in imports(modules()[name], name):
            targets = [module, *(f"{module}.{n}" for n in names)]
            if any(t.startswith(("orchestrator.words", "orchestrator.outbox", "orchestrator.delivery"))
                   for t in targets) and record != "outbox":
                talking.append(f"{record}.py:{line} imports {module} {names}")
    assert talking == []


def _edges() -> dict[str, set[str]]:
    known = modules()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, module, names in imports(path, name):
            for target in [module, *(f"{module}.{n}" for n in names)]:
                resolved = resolve(target)
                # A package's __init__ only re-exports: edges run between the modules themselves.
                if resolved and resolved != name and known[resolved].name != "__init__.py":
                    edges[name].add(resolved)
    return edges


def test_there_are_no_import_cycles() -> None:
    """Function-level and TYPE_CHECKING imports count: a cycle hidden in them still ties the modules together."""
    edges = _edges()
    cycles, index, low, stack, on_stack, counter = [], {}, {}, [], set(), [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_a_long_module_says_why_it_is_long(name: str) -> None:
    path = modules()[name]
    lines = path.read_text().count("\n")
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= LONG_MODULE_LINES or LONG_BECAUSE in docstring, (
        f"{path.relative_to(ROOT)} has {lines} lines; split it, or say at its top '{LONG_BECAUSE} …'")


def test_no_package_hides_a_submodule_behind_a_name_it_exports() -> None:
    """`budget.plan` the function once hid `budget/plan.py`: `from orchestrator.budget import plan` then gave the
    function, and only a code path that used the module found out. No exported name may shadow a submodule."""
    import importlib
    import pkgutil

    hidden = []
    for layer in LAYERS:
        package = importlib.import_module(layer)
        for info in pkgutil.walk_packages(package.__path__, f"{layer}."):
            module = importlib.import_module(info.name)
            parent, _, leaf = info.name.rpartition(".")
            if getattr(importlib.import_module(parent), leaf, module) is not module:
                hidden.append(info.name)
    assert hidden == []
