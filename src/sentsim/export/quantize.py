"""Faster ONNX variants of an exported transformer: ORT's fused graph, dynamic int8 per ISA, static int8.

Each variant is a separate file under ``onnx/``; the manifest (``onnx_export.MANIFEST_FILE``) says
which one runs by default on which CPU. The file names follow sentence-transformers'
(``model_qint8_avx512_vnni.onnx``), so ``SentenceTransformer(DIR, backend="onnx",
model_kwargs={"file_name": ...})`` there loads them too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sentsim.export.head_order import permute_attention_values
from sentsim.export.pairing import reorder_integer_gemms
from sentsim.export.stream_order import permute_hidden_stream

logger = logging.getLogger(__name__)

#: Weight type per instruction set: s8 everywhere, as ORT's fastest kernels multiply u8 activations by
#: s8 weights. VNNI (VPDPBUSD) and ARM's dot product sum in 32 bits; AVX2 (and AVX-512 without VNNI)
#: add weight rows in pairs in 16 bits, so the AVX2 file's rows are re-paired so no pair can overflow
#: (``sentsim.export.stream_order``, ``.head_order``, ``.pairing``). With CPUID capped at AVX2 that file
#: ran 1.26x the speed of u8 weights, whose kernel widens to 16 bits first (benchmarks/README.md).
DYNAMIC_ISAS = {"avx512_vnni": "QInt8", "avx2": "QInt8", "arm64": "QInt8"}
#: The ISAs whose int8 GEMM adds weight pairs in 16 bits: their file gets the saturation-free row order.
PAIRWISE_16_BIT = frozenset({"avx2"})
#: The manifest's name for that row order; it marks exports made before it as stale.
PAIR_LIMIT = "weight rows paired so that no same-sign pair sums above 128 in magnitude (VPMADDUBSW-safe)"
STATIC_FILE = "model_qint8_static.onnx"
OPTIMIZED_FILE = "model_opt.onnx"
#: The manifest's name for the graph :func:`optimize_graph` writes; it changes when the fusions do, so a
#: cached export (the benchmarks') can tell it is stale.
FUSED_GRAPH = "ort-fused, skip layer norm and bias gelu unfused"


def write_variants(folder: Path, model: Any, *, quantize: str, optimize: bool,
                   calibration_sentences: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Writes the requested variants of ``folder/model.onnx`` next to it; returns their manifest entries.

    int8 files are always quantised from ORT's fused graph: on STSb test that is both faster and more
    accurate than quantising the exported graph (81.89 vs 81.73 Spearman; README). ``optimize`` keeps
    the fused fp32 graph itself too.
    """
    variants: dict[str, dict[str, Any]] = {}
    fused = folder / OPTIMIZED_FILE
    if optimize or quantize == "int8":
        optimize_graph(folder / "model.onnx", fused, model)
    if optimize:
        variants[OPTIMIZED_FILE] = {"precision": "fp32", "graph": FUSED_GRAPH}
    if quantize == "int8":
        for isa, weight_type in DYNAMIC_ISAS.items():
            name = f"model_qint8_{isa}.onnx"
            quantize_dynamic_int8(fused, folder / name, weight_type=weight_type)
            variants[name] = {"precision": "int8-dynamic", "isa": isa, "weights": weight_type,
                              "per_channel": False, "graph": FUSED_GRAPH}
            if isa in PAIRWISE_16_BIT:
                try:
                    passes = make_pairwise_safe(folder / name)
                except ValueError as error:  # weights too large too often to pair safely: u8, which cannot overflow
                    logger.info("AVX2 int8 file with u8 weights: %s", error)
                    quantize_dynamic_int8(fused, folder / name, weight_type="QUInt8")
                    variants[name]["weights"] = "QUInt8"
                else:
                    variants[name].update(pair_limit=PAIR_LIMIT, **passes)
        if calibration_sentences:
            quantize_static_int8(folder / "model.onnx", folder / STATIC_FILE, model, calibration_sentences)
            variants[STATIC_FILE] = {"precision": "int8-static", "per_channel": True, "graph": "exported",
                                     "calibration_sentences": len(calibration_sentences)}
    if not optimize and fused.exists():
        fused.unlink()
    return variants


def make_pairwise_safe(path: Path) -> dict[str, int | bool]:
    """Makes the int8 ONNX file ``path`` exact on AVX2's 16-bit pairwise multiply; returns what each pass did.

    The file is read once, the hidden stream (``stream_order``), each head's values (``head_order``) and
    then the remaining GEMMs (``pairing``, with Gathers) are re-ordered in memory, and it is
    written once, if any of them changed it. Raises ValueError, leaving the file as it was, if some GEMM
    has no safe order.
    """
    import onnx

    model = onnx.load(str(path))
    passes = {"hidden_stream_reordered": permute_hidden_stream(model),
              "attention_values_reordered": permute_attention_values(model),
              "gemms_reordered": reorder_integer_gemms(model)}
    if any(passes.values()):  # else the file already is what the passes would write
        onnx.save(model, str(path))
    return passes


def optimize_graph(source: Path, target: Path, model: Any) -> None:
    """ONNX Runtime's BERT fusions that pay on the CPU (attention, embedding layer norm), saved as fp32.

    Two of ORT's fusions are left out because their CPU kernels are slower than what they replace
    (onnxruntime 1.32, measured on 2 Intel Xeon cores with VNNI, int8 VNNI file, STSb test):
    ``SkipLayerNormalization`` ran at ~3 ns per element against ~0.5 for ``Add`` + ``LayerNormalization``
    (22 % of the int8 encode; 1,072 → 1,470 sentences/s without it), and ``BiasGelu`` lost to the
    bias folded into the quantised MatMul plus the ``Gelu`` ORT fuses at load (1,470 → 1,539). The
    encoder also keeps ORT from re-fusing the skip layer norm at load (``SESSION_DISABLED_OPTIMIZERS``).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.transformer.auto_model.config
    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False
    fusions.enable_bias_skip_layer_norm = False
    fusions.enable_bias_gelu = False
    fusions.enable_gelu = False
    optimized = optimize_model(str(source), model_type="bert", num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size), opt_level=1, optimization_options=fusions)
    logger.info("ORT fusions: %s", optimized.get_fused_operator_statistics())
    optimized.save_model_to_file(str(target))


def quantize_dynamic_int8(source: Path, target: Path, *, weight_type: str = "QInt8", reduce_range: bool = False,
                          per_channel: bool = False) -> None:
    """Dynamic int8: weights 8-bit once, activations quantised per batch at run time (no calibration)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ORT's fused ops (com.microsoft domain) defeat ONNX shape inference; their outputs are fp32.
    with _without_preprocessing_advice():
        quantize_dynamic(str(source), str(target), weight_type=QuantType[weight_type], per_channel=per_channel,
                         reduce_range=reduce_range, op_types_to_quantize=["MatMul", "Gemm", "Attention"],
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})


class _PreprocessingAdvice(logging.Filter):
    """Drops ORT's "Please consider (to run) pre-processing before quantization" warning, nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Please consider") and "pre-processing before quantization" in message)


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """ORT's quantisers warn on the root logger, once per file, that the model was not pre-processed.

    Its pre-processing is symbolic shape inference plus ORT's graph optimiser, and every file quantised
    here comes from ORT's optimised graph already (``optimize_graph``), so ``sentsim export`` printed
    three warnings with a link to an image-classification example for nothing. Other warnings pass.
    """
    advice = _PreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def quantize_static_int8(source: Path, target: Path, model: Any, sentences: Sequence[str], *,
                         per_channel: bool = True) -> None:
    """Static int8 (QDQ): activation ranges fixed from ``sentences`` run through the fp32 graph."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    feeds = list(_calibration_feeds(source, model, sentences))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._items, None)

    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm"])


def _calibration_feeds(source: Path, model: Any, sentences: Sequence[str], batch_size: int = 32) -> Iterator[dict]:
    import numpy as np
    import onnxruntime as ort

    wanted = {item.name for item in ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()}
    from sentsim.export.onnx_export import token_ids

    ids = token_ids(model, list(sentences))
    for start in range(0, len(ids), batch_size):
        batch = model.collate(ids[start : start + batch_size])
        feed = {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy()}
        if "token_type_ids" in wanted:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        yield feed
