"""What one optimizer step does: AdamW over the right parameter groups, and the learning-rate schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sentsim.errors import ConfigError
from sentsim.training.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig, *, device: torch.device) -> torch.optim.Optimizer:
    """AdamW without decay on biases and LayerNorm weights (the BERT convention), fused when possible.

    The fused kernel updates all tensors in one pass; on CPU it cut the optimizer step ~5×.
    """
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.learning_rate)


def build_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, *, total_steps: int,
                   processes: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the learning rate, then linear decay to 0 at the last step, or another of
    transformers' schedules (``config.lr_schedule``) with the same warm-up.

    ``processes``: accelerate steps a prepared schedule once per process at each step, so the schedule is
    built that many times as long, its warm-up too.
    """
    from transformers import get_linear_schedule_with_warmup, get_scheduler

    warmup, steps = config.warmup_for(total_steps) * processes, total_steps * processes
    if config.lr_schedule == "linear" and not config.lr_schedule_options:
        return get_linear_schedule_with_warmup(optimizer, warmup, steps)
    try:
        return get_scheduler(config.lr_schedule, optimizer, num_warmup_steps=warmup, num_training_steps=steps,
                             scheduler_specific_kwargs=dict(config.lr_schedule_options or {}))
    except (TypeError, ValueError) as error:  # options the schedule does not take, or lacks one it needs
        raise ConfigError(f"lr schedule {config.lr_schedule!r} with options {config.lr_schedule_options or {}}: "
                          f"{error}") from error


def clip_gradients(model: nn.Module, accelerator: Any, max_norm: float) -> torch.Tensor:
    """accelerate's ``clip_grad_norm_``, without its multiply when nothing is clipped; same result, bit for bit.

    torch scales every gradient by ``min(1, max_norm / (norm + 1e-6))`` even when that is exactly 1, to
    spare accelerators a host sync. On the CPU the sync is free and the multiply is a pass over all
    gradients (~3 ms per MiniLM step on 2 Xeon cores, the 47 MB embedding gradient included), and the
    classic recipe's gradient norm never reached 1.0 in a whole STSb epoch (benchmarks/README.md).
    Other devices and distributed set-ups other than plain DDP keep accelerate's own call.
    """
    from accelerate.utils import DistributedType
    from torch.nn.utils import clip_grads_with_norm_, get_total_norm

    parameters = [parameter for parameter in model.parameters() if parameter.grad is not None]
    plain = accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU)
    if not plain or any(parameter.grad.device.type != "cpu" for parameter in parameters):
        return accelerator.clip_grad_norm_(model.parameters(), max_norm)
    accelerator.unscale_gradients()  # nothing to undo without a gradient scaler; kept for parity
    # As accelerate computes it: the norm of the per-group norms (one group here).
    total = torch.linalg.vector_norm(torch.stack([get_total_norm([p.grad for p in parameters], 2.0)]), 2.0)
    if not bool(max_norm / (total + 1e-6) >= 1.0):  # torch's clip coefficient, before it clamps it to 1
        clip_grads_with_norm_(parameters, max_norm, total)
    return total
