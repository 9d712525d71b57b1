"""Which ONNX file of a model folder runs, and the ONNX Runtime session it runs in (no torch here).

``sentsim export`` writes ``onnx/model.onnx`` and int8 variants per instruction set with a manifest
saying which file each CPU gets; a folder from sentence-transformers has no manifest and is searched
by its file names instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentsim.environment import onnx_isa, physical_cores
from sentsim.errors import ConfigError, ModelLoadError

__all__ = ["BACKENDS", "choose_backend", "find_onnx_file", "has_onnx_files", "open_session", "read_manifest"]

ONNX_FOLDER = "onnx"
MANIFEST_FILE = "sentsim_onnx.json"
#: ORT graph rewrites refused at load. ``SkipLayerNormFusion`` turns ``Add`` + ``LayerNormalization`` into
#: one kernel that is 4–6× slower on the CPU (onnxruntime 1.32: 0.60–0.65 vs 0.09–0.15 ms for 500×384); the int8
#: files ran 1.37× faster without it, and sentence-transformers' own qint8 file 1.14× (README).
SESSION_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
_EXPORT_HINT = "run `sentsim export MODEL -o DIR` (add --quantize int8 for the fast int8 files) and load DIR"
#: Without a manifest (a folder from sentence-transformers / optimum), the int8 file for a CPU is looked for
#: under these names, best first.
_ISA_FILES = {
    "avx512_vnni": ("model_qint8_avx512_vnni.onnx", "model_qint8_avx512.onnx"),
    "avx512": ("model_qint8_avx512.onnx", "model_qint8_avx2.onnx"),
    "avx2": ("model_qint8_avx2.onnx",),
    "arm64": ("model_qint8_arm64.onnx",),
}


def has_onnx_files(folder: Path) -> bool:
    return (folder / ONNX_FOLDER / "model.onnx").is_file() or (folder / "model.onnx").is_file()


def find_onnx_file(folder: Path, file_name: str | None = None, *, isa: str | None = None) -> Path:
    """The ONNX file to run: ``file_name`` if given (``"fp32"``: the fp32 graph), else the one for this CPU.

    The export's manifest names a default per instruction set; a folder without one (written by
    sentence-transformers) gets the ``model_qint8_<isa>.onnx`` it holds for this CPU, else ``model.onnx``.
    """
    onnx_folder = folder / ONNX_FOLDER
    manifest = read_manifest(onnx_folder)
    isa = onnx_isa() if isa is None else isa
    if file_name == "fp32":
        file_name = manifest.get("default", {}).get("fp32", "model.onnx")
    if file_name is not None:
        for candidate in (onnx_folder / file_name, folder / file_name):
            if candidate.is_file():
                return candidate
        raise ModelLoadError(f"{folder} has no ONNX file {file_name!r}; {_EXPORT_HINT}")
    chosen = manifest.get("default", {}).get(isa or "", None)
    names = [chosen] if chosen else list(_ISA_FILES.get(isa or "", ()))
    for name in [*names, "model.onnx"]:
        if (onnx_folder / name).is_file():
            return onnx_folder / name
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    raise ModelLoadError(f"{folder} has no ONNX model (looked for onnx/model.onnx); {_EXPORT_HINT}")


def open_session(file: Path, *, threads: int | None = None, save_optimized_to: Path | None = None) -> Any:
    """The encoder's ONNX Runtime session for ``file``: CPU, all of ORT's rewrites but the slow ones.

    ``save_optimized_to`` writes the graph as ORT rewrote it at load (for tests and inspection).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if save_optimized_to is not None:
        options.optimized_model_filepath = str(save_optimized_to)
    try:
        return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(SESSION_DISABLED_OPTIMIZERS))
    except Exception as error:  # ORT raises its own exception types for bad files
        raise ModelLoadError(f"{file}: ONNX Runtime cannot load it ({error})") from error


def read_manifest(onnx_folder: Path) -> dict[str, Any]:
    path = onnx_folder / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from error


BACKENDS = ("auto", "torch", "onnx")


def choose_backend(model_name_or_path: str | Path, backend: str = "auto") -> str:
    """``torch`` or ``onnx`` for a model; ``auto`` picks onnx for a folder written by ``sentsim export``.

    Only sentsim's own exports qualify for ``auto`` (their manifest names files whose speed and
    accuracy were measured); ONNX files from elsewhere run when asked for with ``onnx``. Without
    onnxruntime installed, ``auto`` stays on torch.
    """
    import importlib.util

    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "auto":
        return backend
    folder = Path(model_name_or_path).expanduser()
    exported = (folder / ONNX_FOLDER / MANIFEST_FILE).is_file()
    return "onnx" if exported and importlib.util.find_spec("onnxruntime") is not None else "torch"
