"""No module-level import cycle in src/sentsim: every module imports in a fresh interpreter, in sorted order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"

# Imports each module in sorted order; a module that is only half-initialised when a cycle comes back
# to it raises ImportError ("partially initialized module") here. A missing optional third-party
# package (onnxruntime, fastapi …) is not a cycle: those modules are listed and skipped.
SCRIPT = """
import importlib, sys
failed, skipped = [], []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] == "sentsim":
            failed.append(f"{name}: {error}")
        else:
            skipped.append(name)
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}")
print("skipped:", skipped)
if failed:
    sys.exit("\\n".join(failed))
"""


def _module_names() -> list[str]:
    names = []
    for path in sorted((SOURCE / "sentsim").rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return sorted(names)


def test_every_module_imports_in_sorted_order_in_a_fresh_interpreter() -> None:
    names = _module_names()
    assert "sentsim.training.loop" in names and "sentsim.reporting.summary" in names
    completed = subprocess.run([sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, check=False,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
