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
__all__ = ["PROGRESS_THRESHOLD", "autocast_context", "batched_forward", "emulated_bf16_warning",
           "length_sorted_batches", "native_bf16",
           "precision_reason", "resolve_precision"]

Precision = Literal["auto", "fp32", "bf16"]
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
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(mode, device):
            for batch in progress_bar(batches, desc=desc, unit="batch", quiet=quiet):
                features = collate([rows[index] for index in batch])
                consume(batch, model({name: tensor.to(device) for name, tensor in features.items()}))
    finally:
        model.train(was_training)
