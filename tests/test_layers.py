"""Layering: imports point down only (DESIGN.md), and the serving install never needs torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "helixserve"
ORDER = [
    "inputs",
    "store",
    "runtime",
    "training",
    "workspace",
    "worker",
    "explain",
    "batch",
    "serving",
    "cli",
]
# Each layer may import itself and these (plus helixserve.errors / settings / the root package).
ALLOWED = {
    "inputs": set(),
    "store": {"inputs"},
    "runtime": {"inputs", "store"},
    "training": {"inputs", "store", "runtime"},
    # torch-free: never training (nor worker, runtime, serving); see docs/design/workspace.md
    "workspace": {"inputs", "store"},
    # trains runs: the only layer beside cli that may import both workspace and training
    "worker": {"inputs", "store", "runtime", "training", "workspace"},
    "explain": {"inputs", "store", "runtime"},
    "batch": {"inputs", "store", "runtime", "explain"},  # VCF scoring: windows from explain
    "serving": {"inputs", "store", "runtime", "workspace", "explain", "batch"},
    "cli": set(ORDER) - {"cli"},
}
SHARED = {"errors", "error_table", "params", "settings", ""}


def helixserve_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name == "helixserve" or name.startswith("helixserve."):
                found.add(name.split(".")[1] if "." in name else "")
    return found


@pytest.mark.parametrize("layer", [d.name for d in PACKAGE.iterdir() if d.name in ALLOWED])
def test_layer_imports_point_down(layer: str) -> None:
    for path in (PACKAGE / layer).rglob("*.py"):
        wrong = helixserve_imports(path) - ALLOWED[layer] - SHARED - {layer}
        assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)} (layer {layer})"


def test_shared_modules_import_no_layer() -> None:
    assert helixserve_imports(PACKAGE / "errors.py") == set()
    assert helixserve_imports(PACKAGE / "error_table.py") == {"errors"}
    for path in (PACKAGE / "params").glob("*.py"):
        assert helixserve_imports(path) <= {"errors", "params"}, path.name
    assert helixserve_imports(PACKAGE / "settings.py") <= {"errors", "inputs"}  # for defaults


def test_inputs_and_cli_import_without_torch_or_sklearn() -> None:
    code = (
        "import sys, helixserve.inputs, helixserve.cli.app; "
        "print(sorted(m for m in ('torch', 'sklearn', 'optuna', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_workspace_imports_without_torch_or_sklearn() -> None:
    code = (
        "import sys, helixserve.workspace.db, helixserve.workspace.models, "
        "helixserve.workspace.projects, helixserve.workspace.experiments, "
        "helixserve.workspace.runs; "
        "print(sorted(m for m in ('torch', 'sklearn', 'optuna', 'matplotlib', "
        "'helixserve.training', 'helixserve.runtime', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
