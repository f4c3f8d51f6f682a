"""The house: imports run one way, from the bottom up, with no circles (lazy imports included).

Every ``import`` / ``from … import`` in ``edgeintent/`` (at module level or inside a function) is an
arrow from the importing file to the imported module. A file may import only from its own floor or
the floors below it, and the arrows form no circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edgeintent"

#: floors from the bottom up: (name, path prefixes relative to edgeintent/)
FLOORS = (
    ("base", ("__init__.py", "errors.py", "registry.py", "io.py", "toolkit/__init__.py")),
    ("data", ("toolkit/data/",)),
    ("features", ("toolkit/features/",)),
    ("models", ("toolkit/models/",)),
    ("bundle", ("toolkit/bundle.py", "toolkit/golden.py", "toolkit/golden_events.py")),
    ("training", ("toolkit/training/",)),
    ("runtimes", ("runtimes/",)),
    ("exporters", ("exporters/", "kit/")),
    ("parity", ("parity/",)),
    ("quantization", ("quantization/",)),
    ("stages", ("runtime_sim/", "decide/", "rank/", "engines/")),
    ("top", ("demo.py", "cli/", "cli")),
)


def floor_of(rel: str) -> int:
    for i, (_, prefixes) in enumerate(FLOORS):
        if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in prefixes):
            return i
    raise AssertionError(f"edgeintent/{rel} is on no floor: add it to FLOORS in tests/test_layers.py")


def module_file(module: str) -> str | None:
    """``edgeintent.a.b`` → ``a/b.py`` or ``a/b/__init__.py`` (relative to edgeintent/), if it exists."""
    parts = module.split(".")
    if parts[0] != "edgeintent":
        return None
    base = PKG.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand.relative_to(PKG).as_posix()
    return None


def arrows() -> dict[str, set[str]]:
    """file → the edgeintent files it imports (relative to edgeintent/)."""
    out: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                f = module_file(name)
                if f is not None and f != rel:
                    targets.add(f)
        out[rel] = targets
    return out


def test_every_file_is_on_a_floor_and_the_graph_is_not_empty():
    graph = arrows()
    assert len(graph) > 50 and sum(len(v) for v in graph.values()) > 100
    for rel in graph:
        floor_of(rel)


def test_no_import_runs_back_up():
    bad = []
    for src, dsts in arrows().items():
        for dst in dsts:
            if floor_of(dst) > floor_of(src):
                bad.append(f"{src} ({FLOORS[floor_of(src)][0]}) imports {dst} ({FLOORS[floor_of(dst)][0]})")
    assert not bad, "imports that run back up:\n" + "\n".join(sorted(bad))


def test_no_import_circle():
    edges = arrows()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if state.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if state.get(n) is None:
            cycle = visit(n)
            assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", ["edgeintent.exporters", "edgeintent.runtimes", "edgeintent.parity.functional",
                                    "edgeintent.quantization.capabilities", "edgeintent.cli", "edgeintent.exporters.kit",
                                    "edgeintent.kit.conformance", "edgeintent.kit.bench", "edgeintent.kit.native"])
def test_lower_floors_import_without_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
