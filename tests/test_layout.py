"""The package's layout: five wings and the helpers, every import pointing down, no circle, small modules.

Run as a script (``python tests/test_layout.py``) it prints the arrows between wings, as the README shows them.
"""

from __future__ import annotations

import ast
import shutil
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "autoaug"
HELPERS = ("errors", "files", "lazy", "machine", "progress", "seeding", "stats")
WINGS = ("data", "augment", "train", "search", "report")  # bottom-up
TOP = ("commands", "cli", "__init__", "__main__")  # bottom-up
LAYER = {**dict.fromkeys(HELPERS, 0), **{w: i + 1 for i, w in enumerate(WINGS)},
         **{t: len(WINGS) + 1 + i for i, t in enumerate(TOP)}}
MAX_LINES = 400


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package in ``root``, by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports anywhere (top level, in functions, for type checking),
    and those a lazy face (``attach(__name__, {NAME: MODULE})``) loads on demand."""
    path = modules[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    root = name.split(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == root}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == root:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "attach":
            table = next((a for a in node.args if isinstance(a, ast.Dict)), None)
            for value in table.values if table else []:
                if isinstance(value, ast.Constant):
                    found.add(f"{package}.{value.value}")
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (itself left out)."""
    modules = module_names(root)
    return {name: {m for m in imports(name, modules) if m != name and m in modules} for name in modules}


def part(module: str) -> str:
    """The wing, helper or top module that ``module`` belongs to (``autoaug`` itself: ``__init__``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def problems(arrows: dict[str, set[str]]) -> list[str]:
    """Imports that point up or sideways between wings, and circles of modules."""
    out = []
    for src, targets in sorted(arrows.items()):
        for dst in sorted(targets):
            a, b = part(src), part(dst)
            if LAYER[b] > LAYER[a]:
                out.append(f"upward arrow: {src} imports {dst} ({a} may import only what lies below it)")
    out += [f"circle: {' -> '.join(c)}" for c in circles(arrows)]
    return out


def circles(arrows: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), each closed on its first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(arrows.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append([*sorted(group), min(group)])

    for v in sorted(arrows):
        if v not in index:
            visit(v)
    return found


def wing_arrows(arrows: dict[str, set[str]]) -> dict[str, set[str]]:
    """The arrows between wings, helpers and the top modules."""
    out: dict[str, set[str]] = defaultdict(set)
    for src, targets in arrows.items():
        out[part(src)] |= {part(t) for t in targets if part(t) != part(src)}
    return out


# ------------------------------------------------------------------------------------------------ the tests
def test_the_package_is_five_wings_and_helpers() -> None:
    entries = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert entries == {*HELPERS, *WINGS, *TOP}
    for wing in WINGS:
        face = (PACKAGE / wing / "__init__.py").read_text()
        assert '"""' in face and "__all__" in face, f"{wing}/__init__.py needs a docstring and __all__"
    assert sorted(p.name for p in (PACKAGE / "data").glob("*.npz")) == ["cifar10_small.npz", "fashion_mnist_small.npz"]


def test_every_arrow_points_down_and_there_is_no_circle() -> None:
    arrows = graph()
    assert sum(map(len, arrows.values())) > 100  # the scan sees the package's imports
    assert problems(arrows) == []


def test_the_check_catches_an_upward_arrow_and_a_circle(tmp_path: Path) -> None:
    copy = tmp_path / "autoaug"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.npz", "__pycache__"))
    with (copy / "data" / "datasets.py").open("a") as f:
        f.write("\n\ndef _late() -> None:\n    from autoaug.report import make_report  # noqa: F401\n")
    with (copy / "augment" / "ops.py").open("a") as f:
        f.write("\nfrom autoaug.augment.policy import Policy  # noqa: E402, F401\n")
    found = problems(graph(copy))
    assert "upward arrow: autoaug.data.datasets imports autoaug.report (data may import only what lies below it)" \
        in found
    assert "circle: autoaug.augment.ops -> autoaug.augment.policy -> autoaug.augment.ops" in found


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


if __name__ == "__main__":
    arrows = wing_arrows(graph())
    order = [*reversed(TOP[:2]), *reversed(WINGS), "helpers"]
    for name in order:
        targets = arrows.get(name, set()) if name != "helpers" else set().union(*(arrows[h] for h in HELPERS))
        shown = sorted({"helpers" if t in HELPERS else t for t in targets} - {name}, key=lambda t: -LAYER.get(t, 0))
        print(f"{name:<8} -> {', '.join(shown) or '(nothing)'}")
    print(*problems(graph()) or ["no upward arrow, no circle"], sep="\n")
