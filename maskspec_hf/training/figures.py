# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Figures of a pre-training run: the reconstruction of one fixed clip under one fixed mask (so that figures of
different steps compare), and the loss curve of a `train_log.jsonl`.

Matplotlib is optional: without it a run trains as usual and only says once that it draws no figures.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..data.clips import clip_rng, first_valid_clip


logger = logging.getLogger(__name__)


def reconstruction_figure(model, input_values, attention_mask, noise, title: str = ""):
    """Matplotlib figure for one clip: input spectrogram | masked input | reconstruction (masked patches filled in)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global state, no backend switching

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(input_values=input_values, attention_mask=attention_mask, noise=noise)
            original, masked, reconstruction = model.reconstruct_spectrogram(
                input_values, outputs.logits, outputs.mask
            )
    finally:
        model.train(was_training)
    panels = [t[0].float().cpu().numpy().T for t in (original, masked, reconstruction)]
    vmin, vmax = np.nanpercentile(panels[0], [1, 99.5])
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="#d9d9d9")
    fig = Figure(figsize=(15, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    masked_share = float(outputs.mask[0].mean())
    names = ("input spectrogram", f"masked input ({masked_share:.0%} of patches removed)", "reconstruction")
    for ax, panel, name in zip(axes, panels, names):
        image = ax.imshow(
            panel, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        ax.set_title(name)
        ax.set_xlabel("frame (10 ms)")
    axes[0].set_ylabel("mel bin")
    fig.colorbar(image, ax=axes, shrink=0.9, label="normalized log-mel")
    loss = float(outputs.loss)
    fig.suptitle(f"{title}  reconstruction loss on masked patches: {loss:.4f}".strip())
    return fig


class ReconstructionFigures:
    """`images/step-<N>.png` of the first usable clip of the data, always under the same mask (main process only:
    elsewhere `write` does nothing)."""

    def __init__(
        self, model, dataset, processor, feature_extractor, seed: int, folder: Path, writer=None, enabled: bool = True
    ):
        self.model, self.folder, self.writer = model, Path(folder), writer
        self.inputs = None
        fixed = first_valid_clip(dataset, processor) if enabled else None
        if fixed is not None:
            features = feature_extractor(
                fixed["waveform"], sampling_rate=feature_extractor.sampling_rate, return_tensors="pt"
            )
            config = model.config
            grid = (features["input_values"].shape[1] // config.patch_size) * config.num_freq_patches
            noise = torch.from_numpy(clip_rng(seed, 3).random((1, grid), dtype=np.float32))
            self.inputs = (features["input_values"], features["attention_mask"], noise, fixed["id"])

    def write(self, step: int, device) -> Path | None:
        """Draw the figure of `step`; returns its path (None when there is no figure to draw)."""
        if self.inputs is None:
            return None
        values, mask, noise, clip_id = self.inputs
        try:
            fig = reconstruction_figure(
                self.model, values.to(device), mask.to(device), noise.to(device), title=f"clip {clip_id}, step {step}:"
            )
        except ImportError:
            logger.warning("matplotlib is not installed (pip install matplotlib): no reconstruction figures.")
            self.inputs = None
            return None
        path = self.folder / f"step-{step:07d}.png"
        fig.savefig(path, dpi=80)
        if self.writer is not None:
            self.writer.add_figure("reconstruction", fig, global_step=step)
        return path


def loss_figure(history: list[dict], path, title: str = "MaskSpec pre-training loss", smoothing: int = 20) -> Path:
    """PNG of the per-step loss of `train_log.jsonl` records and its running mean over `smoothing` steps."""
    from matplotlib.figure import Figure

    steps = [row["step"] for row in history]
    losses = np.array([row["loss"] for row in history])
    smooth = np.convolve(losses, np.ones(smoothing) / smoothing, mode="valid") if len(losses) >= smoothing else losses
    fig = Figure(figsize=(6, 3.5), layout="tight")
    ax = fig.subplots()
    ax.plot(steps, losses, alpha=0.3, label="per step")
    ax.plot(steps[len(steps) - len(smooth) :], smooth, label=f"mean of {smoothing}")
    ax.set_xlabel("step")
    ax.set_ylabel("masked-patch MSE")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=120)
    return Path(path)
