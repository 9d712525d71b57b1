"""The batched no-grad forward both encoders share: precision choice, autocast, length-sorted batches."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from sentsim.errors import ConfigError
from sentsim.inference.batches import PROGRESS_THRESHOLD, length_sorted_batches
from sentsim.progress import progress_bar

# PROGRESS_THRESHOLD and length_sorted_batches live in batches (no torch, shared with the ONNX backend).
__all__ = ["AUTO_FP32_BELOW_TOKENS", "PROGRESS_THRESHOLD", "autocast_context", "batched_forward", "cast_linear_weights",
           "emulated_bf16_warning", "length_sorted_batches", "native_bf16",
           "one_small_batch", "precision_reason", "resolve_precision"]

Precision = Literal["auto", "fp32", "bf16"]

#: Under "auto", a call that is one batch of fewer padded tokens than this runs in fp32 even where bf16
#: is native: bf16 autocast casts every weight first, which costs more than it saves on so little
#: work. One 16-token query on 2 Intel AMX cores: fp32 7.5 ms, bf16 10.0 ms (sentence-transformers'
#: fp32 7.7 ms); 64 tokens is where the two met (4 × 16: 11.1 vs 12.1 ms; 1 × 64: 12.5 vs 11.8 ms).
AUTO_FP32_BELOW_TOKENS = 64
Row = TypeVar("Row")


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls run in hardware (AVX512-BF16 / AMX CPUs, Ampere+ GPUs).

    Elsewhere bf16 is emulated and slower than fp32, so "auto" must not pick it.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(check() for check in checks if check is not None)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_reason(requested: str, device: torch.device) -> str:
    """Why ``resolve_precision(requested, device)`` chose what it did, in a few words for a log line."""
    chosen = resolve_precision(requested, device)
    if requested != "auto":
        emulated = " (emulated here: slower than fp32)" if chosen == "bf16" and not native_bf16(device) else ""
        return f"asked for{emulated}"
    if device.type == "cuda":
        return "this GPU has native bf16" if chosen == "bf16" else "this GPU has no native bf16"
    if chosen == "fp32":
        return f"this {device.type.upper()} has no native bf16"
    from sentsim.environment import cpu_flags

    flags = cpu_flags()
    names = [name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16")) if flag in flags]
    return f"this CPU has native bf16 ({', '.join(names) or 'reported by torch'})"


def describe_torch_path(requested: str, device: torch.device) -> str:
    """The torch path ``requested`` takes on ``device`` and why, in a few words for a command's stderr.

    The ONNX backend names the file it picked; this is the torch backend's counterpart, so that on a
    CPU without native bf16 one learns that ``auto`` means fp32 there. Under ``auto`` with bf16, a call
    that is one short batch still runs in fp32 (``AUTO_FP32_BELOW_TOKENS``).
    """
    chosen = resolve_precision(requested, device)
    reason = precision_reason(requested, device)
    if requested == "auto" and chosen == "bf16" and device.type == "cpu":
        reason += f"; a lone batch under {AUTO_FP32_BELOW_TOKENS} tokens runs fp32"
    return f"torch {chosen} ({reason})"


def emulated_bf16_warning(precision: str, device: str | torch.device) -> str | None:
    """A one-line warning when bf16 is asked for where the hardware only emulates it, else None.

    Emulated bf16 still runs, with bf16's rounding, but slower than fp32: worth one line, not a refusal.
    """
    device = torch.device(device)
    if precision != "bf16" or native_bf16(device):
        return None
    return (f"bf16 is emulated on this {device.type} (no native bf16 instructions), so it runs slower than fp32; "
            "auto picks fp32 here")


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked; matmuls run in bf16, reductions and norms stay in fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cast_linear_weights(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Stores the weights and biases of ``model``'s plain ``nn.Linear`` layers in ``dtype``, in place; returns how many.

    For a model that from now on only runs inference under ``dtype`` autocast, such as a server's.
    Autocast casts every fp32 matmul weight again in each forward: its cache lasts one autocast
    context and does not work under inference mode at all. For a one-sentence forward of MiniLM on one
    core that re-cast was half the time (12.9 → 6.6 ms once the weights are stored in bf16). Autocast
    finds these weights already in its dtype and casts nothing, and the outputs are the same bits:
    the cast done once here is the same rounding as the one autocast did per call. Layers whose
    forward is not ``nn.Linear``'s own are left alone, since their code might not go through autocast.
    Afterwards the model no longer runs outside autocast (fp32 inputs meet bf16 weights), so this is
    only for a model the caller owns.
    """
    cast = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward:
            module.to(dtype)
            cast += 1
    model.linear_weights_dtype = dtype  # read by batched_forward: such a model never runs fp32
    return cast


def one_small_batch(lengths: Sequence[int], *, batches: int) -> bool:
    """True for a call that ``auto`` runs in fp32 even where bf16 is native: one batch of fewer padded
    tokens than ``AUTO_FP32_BELOW_TOKENS``. An encode pool asks it of the whole call, so that its
    chunks run in what ``encode`` would have used rather than each deciding for itself."""
    return batches == 1 and len(lengths) * max(lengths, default=0) < AUTO_FP32_BELOW_TOKENS


def batched_forward(model: nn.Module, rows: Sequence[Row], collate: Callable[[list[Row]], dict[str, torch.Tensor]],
                    consume: Callable[[list[int], Any], None], *, lengths: Sequence[int], batch_size: int,
                    dtype: str = "auto", show_progress: bool | None = None, desc: str = "Encoding",
                    run_overhead: int | None = None) -> None:
    """The one batched no-grad forward of both encoders: eval mode, inference mode, autocast, longest first.

    ``run_overhead``: cut batches where padding costs most (see ``length_sorted_batches``; the server).

    ``collate`` turns a batch of ``rows`` (token ids, unpadded) into the model's input tensors;
    ``consume(indices, outputs)`` gets the positions in ``rows`` and the model's outputs for them, so the
    caller writes results back in input order. The model's train/eval mode is restored afterwards.
    """
    if not rows:
        return
    device = next(model.parameters()).device
    mode = resolve_precision(dtype, device)
    quiet = not show_progress if show_progress is not None else len(rows) < PROGRESS_THRESHOLD
    batches = list(length_sorted_batches(list(lengths), batch_size, run_overhead=run_overhead))
    if (dtype == "auto" and mode == "bf16" and one_small_batch(lengths, batches=len(batches))
            and getattr(model, "linear_weights_dtype", None) is None):
        mode = "fp32"
    # Several batches under bf16 autocast: no_grad rather than inference mode, because only there does
    # autocast keep its cast of each fp32 weight for the whole call instead of casting it again in every
    # batch (STSb test on 2 Intel AMX cores: 1,205 → 1,430 sentences/s, the same vectors). One batch
    # cannot reuse a cast, and there filling the cache costs more than it saves (13 → 21 ms a forward).
    # Inside a caller's own autocast the cache would outlive this call (it is emptied when the outermost
    # context ends) and hold casts of weights the caller may go on to change in place: not then.
    reuse_casts = mode == "bf16" and len(batches) > 1 and not torch.is_autocast_enabled(device.type)
    # Each module's own mode comes back, not the outer one's spread down: a loaded model's outer module
    # may say "training" while its transformer is in eval, and train(True) would switch dropout on inside.
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad() if reuse_casts else torch.inference_mode(), autocast_context(mode, device):
            for batch in progress_bar(batches, desc=desc, unit="batch", quiet=quiet):
                features = collate([rows[index] for index in batch])
                consume(batch, model({name: tensor.to(device) for name, tensor in features.items()}))
    finally:
        for module, training in modes:
            module.training = training
