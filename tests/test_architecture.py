"""The house rules of docs/architecture.md, checked on the code: no import circles (an import inside a
function counts: it is still a dependency), no loose top-level modules beyond the CLI, no hand-written
module over 600 lines, and layers that import downward only — the layer table is read from the
architecture page itself, so the page and the code cannot drift apart."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"
MAX_LINES = 600
GENERATED = re.compile(r"_pb2\.py$")  # protoc's output is not hand-written


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module an imported dotted name lives in (`harness.a.b.C` → `harness.a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """Every harness module `module` imports, at the top or inside a function (lazily)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            owner = _owner(name) if name.startswith("harness") else None
            # A module's own ancestor packages always load before it: that is not a dependency.
            if owner and owner != module and not module.startswith(owner + "."):
                found.add(owner)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, circles = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def _layers() -> list[tuple[str, list[str]]]:
    """The layer table of docs/architecture.md: the first fenced block after '## Layers', top first;
    each line `name  prefix prefix …` (a prefix with `*` matches one dotted name)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("\n## Layers", 1)[1]
    block = section.split("```", 2)[1]
    layers = []
    for line in block.strip("\n").splitlines()[1:]:  # the first line is the table's heading
        name, *prefixes = line.split()
        layers.append((name, prefixes))
    return layers


def _layer_of(module: str, layers) -> tuple[int, str] | None:
    best = None
    for rank, (name, prefixes) in enumerate(layers):
        for prefix in prefixes:
            pattern = re.escape(prefix).replace(r"\*", r"[a-z_0-9]+")
            if re.fullmatch(pattern + r"(\..*)?", module):
                length = prefix.count(".")
                if best is None or length > best[0]:
                    best = (length, rank, name)
    return best and best[1:]


def test_no_import_circles():
    assert _circles(GRAPH) == []


def test_no_loose_top_level_modules_beyond_the_cli():
    loose = sorted(m for m, p in MODULES.items() if m.count(".") == 1 and p.name != "__init__.py")
    assert loose == ["harness.__main__", "harness.cli"]


def test_no_hand_written_module_over_600_lines():
    long = {m: n for m, p in MODULES.items()
            if not GENERATED.search(p.name) and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_module_has_a_layer_and_imports_downward_only():
    layers = _layers()
    assert len(layers) >= 5, "the layer table of docs/architecture.md was not found"
    unplaced = sorted(m for m in MODULES if _layer_of(m, layers) is None)
    assert unplaced == [], "modules the layer table of docs/architecture.md does not place"
    upward = []
    for module, imported in GRAPH.items():
        rank, name = _layer_of(module, layers)
        for other in imported:
            other_rank, other_name = _layer_of(other, layers)
            if other_rank < rank:  # the table lists the top layer first
                upward.append(f"{module} ({name}) imports {other} ({other_name})")
    assert sorted(upward) == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """The checks above could fail: a made-up circle and a made-up upward import are found."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    layers = [("top", ["harness.cli"]), ("bottom", ["harness.services.*.codec", "harness.metrics"])]
    assert _layer_of("harness.services.toy.codec", layers) == (1, "bottom")
    assert _layer_of("harness.cli", layers)[0] < _layer_of("harness.metrics.ledger", layers)[0]
    assert _layer_of("harness.nowhere", layers) is None
