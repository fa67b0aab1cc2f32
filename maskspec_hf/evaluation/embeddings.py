# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Frozen-encoder outputs of clips of any length: the one windowing shared by the linear probe and the HEAR API.

The encoder's positions cover `config.max_frames` frames, so a longer clip goes through it in windows of at most that
many frames. The probe averages its windows (so every window is full: the last one ends flush with the clip); HEAR
concatenates them in time (so no frame appears twice: the last one holds what is left). Windows of many clips are
batched together and padding is masked, so a clip's result does not depend on the clips batched with it.
"""

from collections.abc import Callable

import torch

from ..modeling_maskspec import MaskSpecModel


def window_starts(num_frames: int, window: int, flush_last: bool = True) -> list[int]:
    """Start frames of consecutive `window`-frame windows covering `num_frames` frames.

    With `flush_last` the last window ends flush with the clip (overlapping the one before it), else it holds the
    remaining frames. A clip no longer than one window has a single window starting at 0."""
    if num_frames <= window:
        return [0]
    if not flush_last:
        return list(range(0, num_frames, window))
    return list(range(0, num_frames - window, window)) + [num_frames - window]


@torch.no_grad()
def encode_windows(
    encoder: MaskSpecModel,
    input_values: torch.Tensor,
    attention_mask: torch.Tensor | None,
    readout: Callable,
    window: int | None = None,
    flush_last: bool = True,
    batch_size: int = 16,
) -> list[list[tuple[int, int, torch.Tensor]]]:
    """For each clip of a padded feature batch `[clips, frames, mel]`, `(start, num_frames, readout(output)[i])` of
    each of its windows, in time order (float32, on the CPU).

    `readout(output)` turns the encoder output of a batch of windows into one tensor per window (e.g. the pooled
    embedding, or the time-major patch outputs). `window` defaults to `config.max_frames`; `batch_size` windows go
    through the encoder at a time, each batch padded to its longest window (the padding masked out of attention).
    """
    window = window or encoder.config.max_frames
    parameter = next(encoder.parameters())
    frames = input_values.shape[1]
    lengths = [frames] * len(input_values) if attention_mask is None else attention_mask.sum(dim=1).tolist()
    pieces = [
        (clip, start, min(window, int(length) - start))
        for clip, length in enumerate(lengths)
        for start in window_starts(int(length), window, flush_last)
    ]
    results = [[] for _ in lengths]
    for first in range(0, len(pieces), batch_size):
        group = pieces[first : first + batch_size]
        size = max(n for _, _, n in group)
        values = input_values.new_zeros(len(group), size, input_values.shape[-1])
        mask = torch.zeros(len(group), size, dtype=torch.long)
        for row, (clip, start, n) in enumerate(group):
            values[row, :n] = input_values[clip, start : start + n]
            mask[row, :n] = 1
        padded = bool((mask == 0).any())  # unpadded windows take the encoder's unmasked path
        output = encoder(
            values.to(device=parameter.device, dtype=parameter.dtype),
            attention_mask=mask.to(parameter.device) if padded else None,
        )
        for (clip, start, n), value in zip(group, readout(output).float().cpu()):
            results[clip].append((start, n, value))
    return results


__all__ = ["encode_windows", "window_starts"]
