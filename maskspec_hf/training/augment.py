"""MaskSpec's (PaSST's) fine-tuning recipe on batches: SpecAugment, mixup, the losses and class-balanced sampling.

Plain tensor functions, apart from the Trainer that applies them, so that each can be tested (and reused) alone.
"""

import datasets
import numpy as np
import torch
import torch.nn.functional as F

from ..data.labels import MULTI_LABEL, LabelSpace


# PaSST/MaskSpec class-balanced sampling: weight of a clip = sum over its labels of 1000 / (count + offset).
BALANCED_SAMPLING_OFFSET = 100


def spec_augment(
    input_values: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    freq_mask_bins: int = 48,
    time_mask_frames: int = 192,
    reference_frames: int = 1000,
    mask_value: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One frequency and one time mask per clip (SpecAugment, as PaSST/MaskSpec use it).

    The frequency mask covers `w ~ U{0..freq_mask_bins}` consecutive mel bins at a uniform position; the time mask
    `w ~ U{0..round(time_mask_frames * length / reference_frames)}` frames inside the clip's real frames, so a
    shorter clip gets a proportionally shorter mask. Masked values are set to `mask_value` (0 = the mean of
    normalized features, the padding value). Returns a new tensor.
    """
    batch, frames, bins = input_values.shape
    device = input_values.device

    def uniform(high: torch.Tensor) -> torch.Tensor:  # integers in [0, high], elementwise
        return (torch.rand(high.shape, generator=generator, device=device) * (high + 1)).floor().clamp(max=high)

    if attention_mask is None:
        lengths = torch.full((batch,), frames, device=device, dtype=torch.float32)
    else:
        lengths = attention_mask.sum(dim=1).float()
    masked = torch.zeros(batch, frames, bins, dtype=torch.bool, device=device)
    if freq_mask_bins > 0:
        width = uniform(torch.full((batch,), float(min(freq_mask_bins, bins)), device=device))
        start = uniform(bins - width)
        position = torch.arange(bins, device=device)
        masked |= ((position >= start[:, None]) & (position < (start + width)[:, None]))[:, None, :]
    if time_mask_frames > 0:
        width = uniform(torch.minimum((time_mask_frames * lengths / reference_frames).round(), lengths))
        start = uniform(lengths - width)
        position = torch.arange(frames, device=device)
        masked |= ((position >= start[:, None]) & (position < (start + width)[:, None]))[:, :, None]
    return input_values.masked_fill(masked, mask_value)


def mixup(
    input_values: torch.Tensor,
    attention_mask: torch.Tensor | None,
    targets: torch.Tensor,
    alpha: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Mixup within the batch (PaSST's variant): `λ ~ Beta(α, α)` per clip, `λ = max(λ, 1 - λ)`.

    Clip i becomes `λ_i x_i + (1 - λ_i) x_π(i)` for a random permutation π, its targets (float, `[batch, classes]`)
    likewise, and its attention mask the union of both (padding counts as the zero feature). Uses torch's global RNG.
    """
    batch = input_values.shape[0]
    device = input_values.device
    lam = torch.distributions.Beta(float(alpha), float(alpha)).sample((batch,))
    lam = torch.maximum(lam, 1.0 - lam).to(device)
    perm = torch.randperm(batch).to(device)
    x_lam = lam.to(input_values.dtype)[:, None, None]
    mixed = x_lam * input_values + (1.0 - x_lam) * input_values[perm]
    mask = None if attention_mask is None else torch.maximum(attention_mask, attention_mask[perm])
    t_lam = lam.to(targets.dtype)[:, None]
    return mixed, mask, t_lam * targets + (1.0 - t_lam) * targets[perm]


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, problem_type: str, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean loss over the batch: cross-entropy (class indices or soft targets, optional label smoothing) for
    single-label tasks, binary cross-entropy with logits for multi-label ones. Computed in float32."""
    logits = logits.float()
    if problem_type == MULTI_LABEL:
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    if labels.is_floating_point():
        return F.cross_entropy(logits, labels.float(), label_smoothing=label_smoothing)
    return F.cross_entropy(logits, labels.long(), label_smoothing=label_smoothing)


def augment_batch(
    inputs: dict,
    problem_type: str,
    num_labels: int,
    freq_mask_bins: int = 0,
    time_mask_frames: int = 0,
    time_mask_reference_frames: int = 1000,
    mixup_alpha: float = 0.0,
) -> dict:
    """`inputs` (a training batch with `labels`) with SpecAugment, then mixup; single-label targets become soft
    one-hot targets when mixed. A batch of one clip is not mixed (there is nothing to mix it with)."""
    input_values, attention_mask, labels = inputs["input_values"], inputs.get("attention_mask"), inputs["labels"]
    if freq_mask_bins > 0 or time_mask_frames > 0:
        input_values = spec_augment(
            input_values, attention_mask, freq_mask_bins, time_mask_frames, time_mask_reference_frames
        )
    if mixup_alpha > 0 and input_values.shape[0] > 1:
        if problem_type != MULTI_LABEL:
            labels = F.one_hot(labels.long(), num_labels).float()
        input_values, attention_mask, labels = mixup(input_values, attention_mask, labels.float(), mixup_alpha)
    out = dict(inputs, input_values=input_values, labels=labels)
    if attention_mask is not None:
        out["attention_mask"] = attention_mask
    return out


def class_balanced_weights(targets: np.ndarray, offset: float = BALANCED_SAMPLING_OFFSET) -> np.ndarray:
    """PaSST/MaskSpec sample weights from multi-hot `targets` `[clips, classes]`: sum of 1000 / (count + offset)
    over each clip's classes (clips without labels get the smallest positive weight)."""
    targets = np.asarray(targets, dtype=np.float64)
    per_class = 1000.0 / (targets.sum(axis=0) + offset)
    weights = targets @ per_class
    positive = weights[weights > 0]
    return np.where(weights > 0, weights, positive.min() if positive.size else 1.0)


def balanced_sample_weights(train: datasets.Dataset, label_column: str, label_space: LabelSpace) -> np.ndarray:
    """`class_balanced_weights` of a training split's label column."""
    targets = [label_space.encode(v) for v in train[label_column]]
    if not label_space.multi_label:
        targets = np.eye(label_space.num_labels, dtype=np.float32)[targets]
    return class_balanced_weights(np.stack(targets))


__all__ = [
    "BALANCED_SAMPLING_OFFSET",
    "augment_batch",
    "balanced_sample_weights",
    "class_balanced_weights",
    "classification_loss",
    "mixup",
    "spec_augment",
]
