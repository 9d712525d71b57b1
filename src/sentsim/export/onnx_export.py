"""Model folder → ONNX: the transformer as ``onnx/model.onnx`` next to the rest of the sentence-transformers layout.

Only the transformer goes into the graph (ids → token embeddings); tokenisation, pooling and
normalisation stay outside, in numpy (``sentsim.inference.onnx_backend``), as sentence-transformers'
``backend="onnx"`` does too, so the same folder loads in both.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError, ModelLoadError
from sentsim.persistence.atomic import atomic_save_into
from sentsim.persistence.outputs import check_model_output

logger = logging.getLogger(__name__)

ONNX_FOLDER = "onnx"
FP32_FILE = "model.onnx"
#: Written next to the ONNX files: what each file is, and which one sentsim runs on which CPU.
MANIFEST_FILE = "sentsim_onnx.json"
OPSET = 17
QUANTIZE_CHOICES = ("none", "int8")


def export_model(
    model_name_or_path: str | Path,
    output: str | Path,
    *,
    quantize: str = "none",
    optimize: bool = False,
    overwrite: bool = False,
    calibration_sentences: Sequence[str] | None = None,
) -> Path:
    """Writes ``output``: the model folder plus ``onnx/model.onnx`` (and int8 / optimised variants).

    Args:
        model_name_or_path: a sentsim or sentence-transformers folder, a plain transformer or a hub name.
        output: the new folder; built next to its final place and renamed in, so a failed export
            leaves nothing half-written.
        quantize: ``none`` (fp32 only) or ``int8`` (dynamic int8 variants per instruction set).
        optimize: also write ONNX Runtime's fused transformer graph (attention, layer norm, GELU).
        overwrite: replace an existing ``output``; without it an existing folder is an error.
        calibration_sentences: with ``quantize="int8"``, also write a static int8 variant calibrated
            on these sentences.

    Returns:
        ``output`` as a Path.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {quantize!r}")
    target = Path(output).expanduser()
    check_model_output(target, overwrite=overwrite, inputs=[model_name_or_path], flag="-o")
    from sentsim.encoders.bi_encoder import SentenceTransformer

    model = SentenceTransformer(model_name_or_path, device="cpu").eval()
    with atomic_save_into(target) as temp:
        model.save(temp)
        _copy_extras(Path(model.name_or_path), temp)
        onnx_folder = temp / ONNX_FOLDER
        onnx_folder.mkdir()
        export_transformer(model, onnx_folder / FP32_FILE)
        variants: dict[str, dict[str, Any]] = {FP32_FILE: {"precision": "fp32", "graph": "exported"}}
        if optimize or quantize == "int8":
            from sentsim.export.quantize import write_variants

            variants.update(write_variants(onnx_folder, model, quantize=quantize, optimize=optimize,
                                           calibration_sentences=calibration_sentences))
        manifest = {"format": 1, "opset": OPSET, "variants": variants, "default": default_choice(variants)}
        (onnx_folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def _copy_extras(source: Path, temp: Path) -> None:
    """Files ``save`` does not write but a user put there (README, data config); never overwrites ours."""
    if not source.is_dir():
        return
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith(".") and not (temp / path.name).exists():
            shutil.copy2(path, temp / path.name)


#: Which int8 file a CPU runs: AVX512 without VNNI has AVX2's saturating u8×s8 multiply, so it gets
#: the AVX2 file (u8 weights).
ISA_FILE_ORDER = {"avx512_vnni": ("avx512_vnni",), "avx512": ("avx2",), "avx2": ("avx2",), "arm64": ("arm64",)}


def default_choice(variants: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per instruction set, the file ``onnx_backend`` runs by default; ``fp32``: the fp32 one.

    Measured on STSb test (README, ``benchmarks/onnx_variants.py``): dynamic int8 of the fused graph is
    the fastest variant within 0.3 Spearman of fp32; static int8 and 7-bit weights cost more than 1.4.
    """
    choice: dict[str, str] = {}
    for isa, candidates in ISA_FILE_ORDER.items():
        names = [f"model_qint8_{candidate}.onnx" for candidate in candidates]
        choice[isa] = next((name for name in names if name in variants), FP32_FILE)
    choice["fp32"] = FP32_FILE
    return choice


def _token_embeddings_module(auto_model: Any) -> Any:
    """``auto_model`` wrapped to return the ``last_hidden_state`` tensor alone (the exporter needs tensors)."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto_model = auto_model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            return self.auto_model(**inputs, return_dict=True).last_hidden_state

    return TokenEmbeddings().eval()


def export_transformer(model: Any, path: Path) -> None:
    """Exports ``model``'s transformer with dynamic batch and sequence axes, then checks it against torch.

    The TorchScript exporter (``dynamo=False``) with eager attention is used: for BERT-style encoders it
    gives the plain graph ONNX Runtime's transformer optimiser fuses (attention, embedding layer norm).
    """
    import inspect

    import torch

    auto_model = model.transformer.auto_model.float()
    _use_eager_attention(auto_model)
    use_token_types = "token_type_ids" in inspect.signature(auto_model.forward).parameters and \
        int(getattr(auto_model.config, "type_vocab_size", 0) or 0) > 0
    wrapper = _token_embeddings_module(auto_model)
    sample = model.collate(token_ids(model, ["a tiny sentence to trace the graph", "and another one"]))
    names = ["input_ids", "attention_mask"]
    inputs: tuple[Any, ...] = (sample["input_ids"], sample["attention_mask"])
    if use_token_types:
        names.append("token_type_ids")
        inputs = (*inputs, torch.zeros_like(sample["input_ids"]))
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in names}
    axes["last_hidden_state"] = {0: "batch_size", 1: "sequence_length"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on transformers' mask code (constant padding checks, deprecations) are about
        # branches that do not depend on the input shape; the check below compares the result with torch.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        try:
            torch.onnx.export(wrapper, inputs, str(path), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
        except Exception as error:  # the exporter raises many types; the user needs one readable message
            raise ModelLoadError(f"cannot export {model.name_or_path or 'the model'} to ONNX: {error}") from error
        expected = wrapper(*inputs).numpy()
    _check_against_torch(path, names, inputs, expected)


def _use_eager_attention(auto_model: Any) -> None:
    """Plain matmul-softmax attention in the graph: ORT fuses that into its Attention op, while the
    SDPA export's mask arithmetic (IsNaN/Where) defeats the fusion (measured: 0 of 6 layers fused)."""
    setter = getattr(auto_model, "set_attn_implementation", None)
    if callable(setter):
        try:
            setter("eager")
            return
        except (ValueError, TypeError):  # architectures without an eager path keep their own
            return
    if hasattr(auto_model.config, "_attn_implementation"):
        auto_model.config._attn_implementation = "eager"


def token_ids(model: Any, texts: list[str]) -> list[list[int]]:
    """Unpadded token ids from the torch model (``token_ids``; older sentsim called it ``tokenize``)."""
    method = getattr(model, "token_ids", None) or model.tokenize
    return method(texts)


def _check_against_torch(path: Path, names: list[str], inputs: tuple[Any, ...], expected: Any) -> None:
    """Runs the new file once: an export that silently diverges from torch must not be written."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
    actual = session.run(None, feeds)[0]
    difference = float(np.max(np.abs(actual - expected)))
    if difference > 1e-3:
        raise ModelLoadError(f"the ONNX export differs from torch by {difference:.2e} (token embeddings)")
    logger.info("ONNX export matches torch to %.1e", difference)
