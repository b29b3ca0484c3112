"""The package layout is the architecture: imports point down the layer list, never up, never round.

The layers of ``device/imps`` (docs/architecture.md), lowest first. A module may
import from its own layer and any layer below it, never above; and no chain of
imports (top-level or inside a function, which Python runs late but runs all the
same) may come back to where it started.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "device" / "imps"

#: Lowest first. The top level (errors, ranges, modes, threads, journal...) is the foundation;
#: cli and __main__ are the top.
LAYERS = ["imps", "imps.model", "imps.io", "imps.panel", "imps.box", "imps.sim", "imps.web", "imps.bench",
          "imps.cli"]
TOP = {"imps.cli": "imps.cli", "imps.__main__": "imps.cli"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from pkg import mod`` imports a module; ``from mod import name`` imports mod
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:   # imps.x.y.Name -> imps.x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)
    return {name: imports_of(path, name, modules) for name, path in files.items()}


def layer(module: str) -> int:
    if module in TOP:
        return LAYERS.index(TOP[module])
    best = 0
    for i, prefix in enumerate(LAYERS):
        if i and (module == prefix or module.startswith(prefix + ".")):
            best = i
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {LAYERS[layer(a)]}) imports {b} (layer {LAYERS[layer(b)]})"
                  for a, targets in graph.items() for b in targets if layer(b) > layer(a))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}   # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# -- the package itself ------------------------------------------------------------------------

def test_every_module_sits_in_a_known_layer():
    graph = import_graph(PACKAGE)
    assert "imps.box.app" in graph and "imps.model.runtime" in graph and "imps.cli" in graph
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= {layer_name.split(".")[1] for layer_name in LAYERS[1:-1]}, \
        f"a subpackage not in the layer list (add it to LAYERS and docs/architecture.md): {sorted(packages)}"


def test_imports_point_down_the_layers_only():
    assert upward_imports(import_graph(PACKAGE)) == []


def test_no_import_cycles():
    assert find_cycle(import_graph(PACKAGE)) is None


def test_the_box_never_imports_the_simulation_or_the_command_line():
    graph = import_graph(PACKAGE)
    box = {m for m in graph["imps.box.app"]}
    assert not {m for m in box if m.startswith(("imps.sim", "imps.cli", "imps.bench"))}


# -- the checker catches what it should (a synthetic package) -------------------------------

def _tree(tmp_path, files: dict[str, str]) -> Path:
    root = tmp_path / "imps"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return root


def test_the_checker_catches_an_upward_import_even_inside_a_function(tmp_path):
    root = _tree(tmp_path, {
        "errors.py": "",
        "model/runtime.py": "from ..errors import X\n",
        "box/app.py": "from ..model.runtime import MDRNN\n",
        "io/osc.py": "def late():\n    from ..box import app\n",     # io reaching up into box
    })
    found = upward_imports(import_graph(root))
    assert found == ["imps.io.osc (layer imps.io) imports imps.box.app (layer imps.box)"]


def test_the_checker_catches_an_absolute_upward_import(tmp_path):
    root = _tree(tmp_path, {"model/rows.py": "import imps.sim.board\n", "sim/board.py": ""})
    assert upward_imports(import_graph(root)) == [
        "imps.model.rows (layer imps.model) imports imps.sim.board (layer imps.sim)"]


def test_the_checker_catches_a_cycle_within_a_layer(tmp_path):
    root = _tree(tmp_path, {
        "box/config.py": "from . import impsy_config\n",
        "box/impsy_config.py": "def read():\n    from .config import read_toml\n",
        "box/engine.py": "from .config import Config\n",
    })
    graph = import_graph(root)
    assert upward_imports(graph) == []
    assert find_cycle(graph) in (["imps.box.config", "imps.box.impsy_config", "imps.box.config"],
                                 ["imps.box.impsy_config", "imps.box.config", "imps.box.impsy_config"])


def test_a_clean_synthetic_tree_passes(tmp_path):
    root = _tree(tmp_path, {
        "errors.py": "",
        "model/runtime.py": "from ..errors import X\nimport os\n",
        "box/app.py": "from ..model import runtime\nfrom imps.errors import X\n",
        "cli.py": "def run():\n    from .box.app import Box\n",
    })
    graph = import_graph(root)
    assert graph["imps.box.app"] == {"imps.model.runtime", "imps.errors"}
    assert upward_imports(graph) == [] and find_cycle(graph) is None


@pytest.mark.parametrize("module, expected", [("imps.errors", "imps"), ("imps.io.midi.din", "imps.io"),
                                              ("imps.__main__", "imps.cli"), ("imps.bench.e2e", "imps.bench")])
def test_layer_of_a_module(module, expected):
    assert LAYERS[layer(module)] == expected
