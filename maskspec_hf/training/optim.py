# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Optimisation recipe pieces shared by the training commands: AdamW (fused where torch has the kernel) and its
parameter groups, the linear learning-rate scaling rule and every schedule `transformers.get_scheduler` builds.

MAE/MaskSpec decay only weight matrices, and scale the base learning rate by the effective batch; keeping these in
one place keeps pre-training and fine-tuning on the same recipe.
"""

from __future__ import annotations

import torch
from transformers import SchedulerType


LR_REFERENCE_BATCH = 256
# Every schedule transformers.get_scheduler builds; these two step on a metric (the training loss) instead of the step.
SCHEDULER_TYPES = [t.value for t in SchedulerType]
METRIC_SCHEDULERS = ("reduce_lr_on_plateau", "greedy")
# Devices with torch's fused AdamW kernel. Elsewhere (and on CPU by default) AdamW loops over the parameter tensors
# with ~10 small ops each; fused, the CPU recipe's whole step is 1.04-1.07x faster (`benchmarks/decoder_step.py`,
# its "looped AdamW" rows). The update is the same to float rounding.
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def adamw(params, device_type: str, **options) -> torch.optim.AdamW:
    """`torch.optim.AdamW(params, **options)`, fused on `FUSED_ADAMW_DEVICES`."""
    return torch.optim.AdamW(params, fused=True if device_type in FUSED_ADAMW_DEVICES else None, **options)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices only; none on biases, LayerNorm weights (1-D parameters) and
    the decoder's mask token, as in MAE/MaskSpec."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or "mask_token" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_learning_rate(base_lr: float, effective_batch_size: int, scale: bool = True) -> float:
    """Linear scaling rule: `base_lr * effective_batch_size / 256`."""
    return base_lr * effective_batch_size / LR_REFERENCE_BATCH if scale else base_lr


def build_scheduler(optimizer, scheduler_type: str, warmup_steps: int, total_steps: int, kwargs: dict | None = None):
    """Any `transformers.SchedulerType`; `kwargs` are its specific arguments (`--lr_scheduler_kwargs`)."""
    from transformers import get_scheduler

    try:
        return get_scheduler(
            scheduler_type,
            optimizer,
            num_warmup_steps=warmup_steps,
            num_training_steps=total_steps,
            scheduler_specific_kwargs=kwargs,
        )
    except (TypeError, ValueError) as err:  # a missing or unknown scheduler argument
        raise ValueError(f"--lr_scheduler_type {scheduler_type} with --lr_scheduler_kwargs {kwargs}: {err}") from err


def step_scheduler(scheduler, scheduler_type: str, loss: float) -> None:
    """Advance the schedule by one optimizer step: a metric schedule on the step's loss, any other on the step."""
    if scheduler_type in METRIC_SCHEDULERS:
        scheduler.step(loss)
    else:
        scheduler.step()


def layer_decay_parameter_groups(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float,
    decay_parameter_names: set[str] | None = None,
) -> list[dict]:
    """Optimizer parameter groups with layer-wise learning-rate decay (BEiT/MAE-style fine-tuning).

    Depth 0 is the patch projection, depth i + 1 encoder block i, depth L + 1 the final LayerNorm and the head; a
    parameter at depth d gets `learning_rate * layer_decay ** (L + 1 - d)`. Biases and norm weights get no weight
    decay (unless `decay_parameter_names` says otherwise). Each group records its `lr_scale`.
    """
    num_layers = model.config.num_hidden_layers
    if decay_parameter_names is None:
        decay_parameter_names = {n for n, p in model.named_parameters() if p.ndim > 1}
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        parts = name.split(".")
        blocks = [int(parts[i + 1]) for i in range(len(parts) - 1) if parts[i] == "layers" and parts[i + 1].isdigit()]
        if "patch_embeddings" in parts[:-1]:
            depth = 0
        elif blocks:
            depth = blocks[0] + 1
        else:
            depth = num_layers + 1
        decay = name in decay_parameter_names
        scale = layer_decay ** (num_layers + 1 - depth)
        group = groups.setdefault(
            (depth, decay),
            {
                "params": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr": learning_rate * scale,
                "lr_scale": scale,
            },
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]
