# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""What the machine can do fast: `--mixed_precision auto` picks bf16 only where the hardware has bf16 units.

A bf16 autocast step is 1.15-1.3x faster than fp32 on CPUs with AVX512-BF16 or AMX (benchmarks/README.md) and
many times slower on CPUs without them (emulated), so a recipe file that must run anywhere cannot name bf16.
"""

from __future__ import annotations

import torch


PRECISIONS = ["auto", "no", "bf16", "fp16"]


def cpu_flags() -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16_units() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def accelerator_supports_bf16() -> bool:
    """A CUDA (or other torch accelerator) device with native bf16."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return hasattr(torch, "accelerator") and torch.accelerator.is_available()


def resolve_mixed_precision(requested: str | None, has_accelerator: bool) -> str | None:
    """`auto` -> `bf16` where the device computes it natively (a bf16 GPU, a CPU with AVX512-BF16/AMX), else `no`;
    any other value (None: the launcher's) unchanged."""
    if requested != "auto":
        return requested
    fast = accelerator_supports_bf16() if has_accelerator else cpu_has_bf16_units()
    return "bf16" if fast else "no"
