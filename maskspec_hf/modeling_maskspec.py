# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""PyTorch MaskSpec: masked spectrogram modeling (Chong et al. 2022; Niizumi et al. 2021 MSM-MAE).

Data flows one way: spectrogram -> `patchify` -> patch projection + 2-D sinusoidal (or learned) positions ->
`random_masking` (masked patches are removed) -> [class token prepended] -> encoder -> decoder (mask token at masked
positions) -> `reconstruction_loss`.

This file is copied next to saved checkpoints and loaded as remote code, so it imports only torch, transformers and
its own configuration file.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, auto_docstring
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.import_utils import is_torchdynamo_exporting, is_tracing
from transformers.utils.output_capturing import capture_outputs

from .configuration_maskspec import MaskSpecConfig


# ----------------------------------------------------------------------------------------------------------------------
# The method, one small function per step
# ----------------------------------------------------------------------------------------------------------------------


def _first_frames(values: torch.Tensor, num_frames) -> torch.Tensor:
    """`values[:, :num_frames]`, in a form that also traces with a symbolic frame count.

    While tracing, slicing makes torch.export / torch.compile prove `num_frames <= values.shape[1]`, which they cannot
    do for `patch_size * (frames // patch_size)`; `index_select` needs no such proof. Eager mode keeps the free view.
    """
    if is_tracing(values):
        return values.index_select(1, torch.arange(num_frames, device=values.device))
    return values[:, :num_frames]


def _split_rows(rows: torch.Tensor, batch_size) -> torch.Tensor:
    """`[batch * n, ...]` -> `[batch, n, ...]`.

    Reshaping `[batch, t, f, ...]` straight to `[batch, t * f, ...]` makes the tracer add a guard on the (symbolic)
    frame count that it cannot prove; going through one merged leading axis does not.
    """
    return rows.reshape(batch_size, rows.shape[0] // batch_size, *rows.shape[1:])


def patchify(spectrogram: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut `[batch, frames, mel]` into non-overlapping `patch_size` x `patch_size` patches.

    Trailing frames and mel bins that do not fill a whole patch are cropped (n = floor(T/p) * floor(F/p), as in the
    paper). Patches are ordered time-major (index = time_patch * num_freq_patches + freq_patch) and each is flattened
    frames-first to `patch_size**2` values. Returns the patches `[batch, n, p*p]` and the grid `(time, freq)`.
    """
    batch_size, num_frames, num_bins = spectrogram.shape
    grid = (num_frames // patch_size, num_bins // patch_size)
    if grid[0] == 0 or grid[1] == 0:
        raise ValueError(
            f"The spectrogram ({num_frames} frames x {num_bins} mel bins) is smaller than one {patch_size}x{patch_size} "
            "patch; give at least `patch_size` frames and mel bins."
        )
    cropped = _first_frames(spectrogram, grid[0] * patch_size)[:, :, : grid[1] * patch_size]
    patches = cropped.reshape(batch_size * grid[0], patch_size, grid[1], patch_size).transpose(1, 2)
    return _split_rows(patches.reshape(-1, patch_size * patch_size), batch_size), grid


def unpatchify(patches: torch.Tensor, grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Inverse of `patchify`: `[batch, n, p*p]` -> `[batch, grid_t * p, grid_f * p]`."""
    batch_size = patches.shape[0]
    spectrogram = patches.reshape(batch_size, grid[0], grid[1], patch_size, patch_size).permute(0, 1, 3, 2, 4)
    return spectrogram.reshape(batch_size, grid[0] * patch_size, grid[1] * patch_size)


def _sinusoidal_table(num_time: int, num_freq: int, dim: int, device=None) -> torch.Tensor:
    """The float32 table `[num_time * num_freq, dim]`, built with torch ops only so that it traces with symbolic sizes.

    Half of the channels encode the time index, half the frequency index, each as sin/cos at geometric frequencies.
    The angles are computed in float64 (then rounded) so the table does not depend on the device's float32 sin/cos.
    """
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)

    def sin_cos(num_positions):
        # sin/cos of each time (or frequency) index once, then broadcast over the grid: 1/num_freq of the work.
        angles = torch.arange(num_positions, dtype=torch.float64, device=device)[:, None] * omega
        return torch.cat([angles.sin(), angles.cos()], dim=-1).float()

    time, freq = sin_cos(num_time), sin_cos(num_freq)
    table = torch.cat([time[:, None].expand(-1, num_freq, -1), freq[None].expand(num_time, -1, -1)], dim=-1)
    return table.reshape(-1).view(-1, 4 * quarter)  # via 1-D: see `_split_rows`


# Eager-mode tables by (num_time, num_freq, dim, device, dtype): a forward then costs a dict look-up. Only real tensors
# built outside any tracing go in, so compile / export / fake / meta passes never leave a tensor here that later eager
# calls would trip on.
_TABLE_CACHE: dict[tuple, torch.Tensor] = {}
_TABLE_CACHE_SIZE = 32


def sinusoidal_position_embedding(grid: tuple[int, int], dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 2-D sinusoidal positions `[grid_t * grid_f, dim]` in `patchify`'s order; any number of frames works."""
    device = torch.device("cpu") if device is None else torch.device(device)
    dtype = torch.float32 if dtype is None else dtype
    key = (grid[0], grid[1], dim, device, dtype)
    sizes_are_ints = all(type(size) is int for size in grid)  # a SymInt (dynamic shapes) is neither hashable nor fixed
    if not sizes_are_ints or device.type == "meta" or is_tracing():
        return _sinusoidal_table(grid[0], grid[1], dim, device=device).to(dtype=dtype)
    table = _TABLE_CACHE.get(key)
    if table is None:
        with torch.inference_mode(False):  # a normal tensor, usable later by autograd whatever mode built it
            table = _sinusoidal_table(grid[0], grid[1], dim, device=device).to(dtype=dtype)
        if is_tracing(table):  # built under a fake-tensor mode (e.g. a shape-only pass): do not keep it
            return table
        if len(_TABLE_CACHE) >= _TABLE_CACHE_SIZE:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        _TABLE_CACHE[key] = table
    return table


def sinusoidal_table_with_prefix(grid: tuple[int, int], dim: int, num_prefix_tokens: int = 0) -> torch.Tensor:
    """`[1, num_prefix_tokens + grid_t * grid_f, dim]`: zero rows for the prefix (class) tokens, then the sinusoids.

    MAE's fixed table with its class-token row; what a learned position table starts from.
    """
    table = _sinusoidal_table(grid[0], grid[1], dim)
    return torch.cat([table.new_zeros(num_prefix_tokens, dim), table])[None]


def learned_position_embedding(table: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int) -> torch.Tensor:
    """The patch rows `[grid_t * grid_f, dim]` of a learned table `[1, prefix + T * grid_f, dim]` (time-major).

    An input with fewer time patches than the table's `T` takes its first `grid_t` time columns, which in patch order
    are its first rows; one with more has no positions (`MaskSpecModel` rejects it before).
    """
    patch_rows = table[:, num_prefix_tokens:]
    num_table_time = patch_rows.shape[1] // grid[1]
    if type(grid[0]) is int and grid[0] > num_table_time:
        raise ValueError(
            f"The learned position table covers {num_table_time} time patches, the input has {grid[0]}: give at "
            "most `max_frames` frames."
        )
    return _first_frames(patch_rows, grid[0] * grid[1])[0]


def _patch_positions(module: nn.Module, grid: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """Positions `[n, dim]` of the patches of `grid` for `module` (the encoder or a decoder): its learned table
    `position_embeddings` when it has one, else the sinusoids; in `like`'s device and dtype."""
    table = getattr(module, "position_embeddings", None)
    if table is None:
        return sinusoidal_position_embedding(grid, like.shape[-1], device=like.device, dtype=like.dtype)
    return learned_position_embedding(table, grid, module.num_prefix_tokens).to(like.dtype)


def _split_prefix(states: torch.Tensor, num_prefix_tokens: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """`[batch, c + n, dim]` -> (the `c` prefix (class) tokens or `None` when there are none, the `n` patch tokens)."""
    if num_prefix_tokens == 0:
        return None, states
    return states[:, :num_prefix_tokens], states[:, num_prefix_tokens:]


def _join_prefix(module: nn.Module, prefix: torch.Tensor | None, patches: torch.Tensor) -> torch.Tensor:
    """`[prefix + its positions, patches]`; the prefix's positions are the first rows of `module`'s learned table,
    or none for sinusoidal positions (MAE's zero row). Without prefix, `patches` as they are."""
    if prefix is None:
        return patches
    table = getattr(module, "position_embeddings", None)
    if table is not None:
        prefix = prefix + table[:, : prefix.shape[1]].to(prefix.dtype)
    return torch.cat([prefix.to(patches.dtype).expand(patches.shape[0], -1, -1), patches], dim=1)


def _with_prefix_mask(patch_mask: torch.Tensor | None, num_prefix_tokens: int) -> torch.Tensor | None:
    """A token mask for `[prefix tokens, patches]`: the prefix tokens are always real."""
    if patch_mask is None or num_prefix_tokens == 0:
        return patch_mask
    prefix = patch_mask.new_ones(patch_mask.shape[0], num_prefix_tokens)
    return torch.cat([prefix, patch_mask], dim=1)


def random_masking(
    batch_size: int, num_patches: int, mask_ratio: float, noise: torch.Tensor | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose floor(num_patches * mask_ratio) patches per sample to mask, uniformly at random.

    The patches with the smallest `noise` stay visible (pass `noise` `[batch, num_patches]` for deterministic masks).
    Returns `ids_keep` `[batch, n_visible]` (visible patch indices, in shuffled order), `mask` `[batch, num_patches]`
    (1 = masked, 0 = visible, in patch order) and `ids_restore` `[batch, num_patches]`, which puts
    `[visible tokens, mask tokens]` back into patch order.
    """
    num_masked = math.floor(num_patches * mask_ratio)
    num_keep = num_patches - num_masked
    if noise is None:
        noise = torch.rand(batch_size, num_patches, device=device)
    elif noise.shape != (batch_size, num_patches):
        raise ValueError(f"`noise` must have shape {(batch_size, num_patches)}, got {tuple(noise.shape)}.")
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = (ids_restore >= num_keep).to(noise.dtype if noise.is_floating_point() else torch.float32)
    return ids_shuffle[:, :num_keep], mask, ids_restore


def _min_pool(values: torch.Tensor, grid: tuple[int, int], block_size: int) -> torch.Tensor:
    """`[batch, n]` -> for every patch, the smallest value over the `block_size` x `block_size` patches (time x
    frequency) around it, edges clipped."""
    grid_values = values.reshape(values.shape[0], 1, grid[0], grid[1])
    before = (block_size - 1) // 2
    after = block_size - 1 - before
    padded = nn.functional.pad(-grid_values, (before, after, before, after), value=-math.inf)
    return -nn.functional.max_pool2d(padded, block_size, stride=1).reshape(values.shape)


def _order_by(keys: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Patch indices `[batch, n]` sorted by `keys`, ties broken by `noise` (both ascending)."""
    by_noise = torch.argsort(noise, dim=1)
    by_key = torch.argsort(keys.gather(1, by_noise), dim=1, stable=True)
    return by_noise.gather(1, by_key)


def structured_masking(
    grid: tuple[int, int],
    mask_ratio: float,
    strategy: str,
    noise: torch.Tensor | None = None,
    block_size: int = 5,
    batch_size: int | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Like `random_masking`, with structure: exactly floor(n * mask_ratio) patches masked per sample.

    Patches are ranked by a key drawn from `noise` (`[batch, n]`, uniform; drawn when `None`), ties broken by each
    patch's own noise, and the `n - num_masked` smallest stay visible:

    - `"random"`: the patch's noise (the same mask as `random_masking`).
    - `"time"` / `"frequency"`: the mean noise of the patch's time column / frequency row, so whole columns (rows)
      are masked; the one the exact count cuts through is split at random.
    - `"inverse_block"` (data2vec 2.0, EAT): the smallest noise in the `block_size` x `block_size` block around
      the patch. A patch's key is the noise of the first center (in increasing noise) whose block covers it, so the
      visible patches are the union of the blocks around the centers with the smallest noise, the last block cut at
      random to the exact count, and the rest is masked.

    Returns `ids_keep`, `mask` and `ids_restore` as `random_masking` does. In `argsort(ids_restore)` the masked
    patches come in the order of their own noise (a uniformly random order, which `decoder_reconstruct_ratio`
    takes its subset from); for `"random"` this is exactly `random_masking`'s order.
    """
    num_patches = grid[0] * grid[1]
    batch_size = noise.shape[0] if batch_size is None else batch_size
    if noise is None:
        noise = torch.rand(batch_size, num_patches, device=device)
    elif noise.shape != (batch_size, num_patches):
        raise ValueError(f"`noise` must have shape {(batch_size, num_patches)}, got {tuple(noise.shape)}.")
    if strategy == "random":
        return random_masking(batch_size, num_patches, mask_ratio, noise=noise)
    num_keep = num_patches - math.floor(num_patches * mask_ratio)
    values = noise.float()
    grid_values = values.reshape(batch_size, grid[0], grid[1])
    if strategy == "time":
        keys = grid_values.mean(dim=2, keepdim=True).expand(-1, -1, grid[1]).reshape(batch_size, num_patches)
    elif strategy == "frequency":
        keys = grid_values.mean(dim=1, keepdim=True).expand(-1, grid[0], -1).reshape(batch_size, num_patches)
    elif strategy == "inverse_block":
        keys = _min_pool(values, grid, block_size)
    else:
        raise ValueError(f"Unknown `mask_strategy` {strategy!r}.")
    visible = torch.zeros(batch_size, num_patches, dtype=torch.bool, device=noise.device)
    visible.scatter_(1, _order_by(keys, values)[:, :num_keep], True)
    # Visible patches first, then the masked ones, each part in the order of the patches' own noise.
    ids_shuffle = _order_by((~visible).to(values.dtype), values)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = (~visible).to(noise.dtype if noise.is_floating_point() else torch.float32)
    return ids_shuffle[:, :num_keep], mask, ids_restore


def num_reconstructed(num_masked: int, ratio: float) -> int:
    """How many masked patches `decoder_reconstruct_ratio` reconstructs: `max(1, floor(num_masked * ratio))`."""
    return min(num_masked, max(1, math.floor(num_masked * ratio)))


def frames_to_patch_mask(attention_mask: torch.Tensor, grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Frame-level padding mask `[batch, frames]` -> patch-level `[batch, n]` (bool).

    A row of patches counts as real when all its frames are real, so a padded clip yields exactly the patches the
    same clip yields alone (whose trailing partial patch is cropped).
    """
    batch_size = attention_mask.shape[0]
    valid_frames = _first_frames(attention_mask.bool(), grid[0] * patch_size)
    valid_rows = valid_frames.reshape(batch_size * grid[0], patch_size).all(dim=-1)
    return _split_rows(valid_rows[:, None].expand(-1, grid[1]).reshape(-1), batch_size)


def _padding_patch_mask(
    attention_mask: torch.Tensor | None, grid: tuple[int, int], patch_size: int
) -> torch.Tensor | None:
    """`frames_to_patch_mask`, or `None` when no patch is padding.

    In eager mode an all-real mask is dropped, so SDPA runs unmasked and pooling is a plain mean. While tracing
    (compile, export) the values are unknown, so the mask is always kept: the graph has no data-dependent branch and
    an all-real mask gives the same result.
    """
    if attention_mask is None:
        return None
    patch_mask = frames_to_patch_mask(attention_mask, grid, patch_size)
    if not is_tracing(patch_mask) and bool(patch_mask.all()):
        return None
    return patch_mask


def reconstruction_loss(
    predictions: torch.Tensor,
    target_patches: torch.Tensor,
    mask: torch.Tensor,
    norm_pix_loss: bool = True,
    patch_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error over the masked (and real) patches only.

    With `norm_pix_loss`, each target patch is normalized by its own mean and std first (the official MaskSpec
    pre-training scripts do this; it helps the representation, as in MAE).
    """
    if norm_pix_loss:
        mean = target_patches.mean(dim=-1, keepdim=True)
        var = target_patches.var(dim=-1, keepdim=True)
        target_patches = (target_patches - mean) / (var + 1.0e-6) ** 0.5
    per_patch = ((predictions.float() - target_patches.float()) ** 2).mean(dim=-1)
    weight = mask.float() if patch_mask is None else mask.float() * patch_mask.float()
    return (per_patch * weight).sum() / weight.sum().clamp(min=1.0)


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
@auto_docstring(custom_intro="Output of the MaskSpec encoder.")
class MaskSpecModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
        Encoder output for the visible patches (all patches when no masking was asked for), after the final
        LayerNorm when the model has one (`config.use_final_layernorm`); the class token, if any, is not part of it.
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        With `config.pooling="mean"`, the mean of `last_hidden_state` over the real (non-padding) patches; with
        `"cls"`, `cls_hidden_state`.
    mask (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
        1 for masked (removed) patches, 0 for visible ones; `None` without masking.
    ids_restore (`torch.LongTensor` of shape `(batch_size, num_patches)`, *optional*):
        Indices that put `[visible tokens, mask tokens]` back into patch order; `None` without masking.
    patch_attention_mask (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
        Which tokens of `last_hidden_state` come from real frames (not padding); `None` when all do (in eager mode;
        while tracing, the mask passed in is always kept).
    grid (`tuple[int, int]`):
        Number of patches along time and frequency; `None` while exporting (`torch.export`, ONNX), whose outputs
        must be tensors.
    cls_hidden_state (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
        The class token's output (after the final LayerNorm when the model has one); `None` without class token
        (`config.use_cls_token`). Recorded `hidden_states` and `attentions` cover the whole sequence, the class
        token first.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    patch_attention_mask: torch.BoolTensor | None = None
    grid: tuple[int, int] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cls_hidden_state: torch.FloatTensor | None = None


@dataclass
@auto_docstring(custom_intro="Output of MaskSpec pre-training.")
class MaskSpecForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `(1,)`):
        Mean squared reconstruction error over the masked patches.
    logits (`torch.FloatTensor` of shape `(batch_size, num_patches, patch_size ** 2)`):
        Reconstructed patches (per-patch normalized when `config.norm_pix_loss`).
    mask (`torch.FloatTensor` of shape `(batch_size, num_patches)`):
        1 for masked patches, 0 for visible ones.
    ids_restore (`torch.LongTensor` of shape `(batch_size, num_patches)`):
        Indices that restore the original patch order.
    grid (`tuple[int, int]`):
        Number of patches along time and frequency.
    reconstruction_mask (`torch.FloatTensor` of shape `(batch_size, num_patches)`):
        1 for the patches the decoder reconstructed and the loss scored: the masked patches, or in training with
        `config.decoder_reconstruct_ratio < 1` the subset of them. `logits` are 0 for the other patches, except with
        the paper's decoder over all patches (`decoder_type="self_attention"`, all masked patches reconstructed),
        which predicts every patch.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    grid: tuple[int, int] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    reconstruction_mask: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class MaskSpecAttention(nn.Module):
    """Multi-head self-attention; the kernel (SDPA, eager, flash, ...) comes from `ALL_ATTENTION_FUNCTIONS`."""

    def __init__(self, config: MaskSpecConfig, hidden_size: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        # One fused projection: a single larger matmul is faster than three on CPU and GPU.
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, seq_len, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch_size, seq_len, 3, self.num_heads, self.head_dim)
        # Split on the `3` axis, then put heads first: in the backward pass the three gradients are stacked straight
        # into the `[batch, seq, 3, heads, head_dim]` layout the projection needs (one copy, not two).
        query, key, value = (states.transpose(1, 2) for states in qkv.unbind(2))

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = self.proj(attn_output.reshape(batch_size, seq_len, -1))
        return attn_output, attn_weights


class MaskSpecMLP(nn.Module):
    def __init__(self, config: MaskSpecConfig, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class MaskSpecLayer(GradientCheckpointingLayer):
    """Pre-norm ViT block; the encoder and the decoder both use it, with their own widths."""

    def __init__(self, config: MaskSpecConfig, hidden_size: int, num_heads: int, intermediate_size: int):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.attention = MaskSpecAttention(config, hidden_size, num_heads)
        self.layernorm_after = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.mlp = MaskSpecMLP(config, hidden_size, intermediate_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        attn_output, _ = self.attention(self.layernorm_before(hidden_states), attention_mask, **kwargs)
        hidden_states = hidden_states + self.dropout(attn_output)
        return hidden_states + self.dropout(self.mlp(self.layernorm_after(hidden_states)))


class MaskSpecPatchEmbeddings(nn.Module):
    """Linear projection of flattened p x p patches to the encoder width."""

    def __init__(self, config: MaskSpecConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.projection = nn.Linear(config.patch_dim, config.hidden_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.projection(patches)


def _decoder_position_table(config: MaskSpecConfig) -> nn.Parameter | None:
    """The decoder's learned position table (`decoder_position_embedding_type="learned"`), else `None`."""
    if config.decoder_position_embedding_type != "learned":
        return None
    num_rows = int(config.use_cls_token) + config.num_time_patches * config.num_freq_patches
    return nn.Parameter(torch.zeros(1, num_rows, config.decoder_hidden_size))


class MaskSpecDecoder(nn.Module):
    """Pre-training decoder: mask tokens at the masked positions, positions again, 8 blocks, linear to p*p values.

    With a class token (`config.use_cls_token`), `latent` starts with the encoder's class token output, which goes
    through the decoder too (MAE) and is dropped before the prediction.
    """

    def __init__(self, config: MaskSpecConfig):
        super().__init__()
        self.config = config
        self.num_prefix_tokens = int(config.use_cls_token)
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        table = _decoder_position_table(config)
        if table is not None:
            self.position_embeddings = table
        self.layers = nn.ModuleList(
            [
                MaskSpecLayer(
                    config,
                    config.decoder_hidden_size,
                    config.decoder_num_attention_heads,
                    config.decoder_intermediate_size,
                )
                for _ in range(config.decoder_num_hidden_layers)
            ]
        )
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.pred = nn.Linear(config.decoder_hidden_size, config.patch_dim)

    def forward(
        self,
        latent: torch.Tensor,
        ids_restore: torch.Tensor,
        grid: tuple[int, int],
        patch_mask: torch.Tensor | None = None,
        ids_visible: torch.Tensor | None = None,
        ids_reconstruct: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predictions `[batch, n, p*p]` for every patch in patch order (the paper's decoder over all patches), or,
        given `ids_visible` (the order of `latent`'s patch tokens) and `ids_reconstruct`, `[batch, r, p*p]` for
        those patches only, with the decoder over the visible tokens and those `r` mask tokens alone."""
        if ids_reconstruct is not None:
            return self._forward_subset(latent, grid, patch_mask, ids_visible, ids_reconstruct)
        prefix, hidden_states = _split_prefix(self.decoder_embed(latent), self.num_prefix_tokens)
        batch_size, num_visible, width = hidden_states.shape
        mask_tokens = self.mask_token.expand(batch_size, ids_restore.shape[1] - num_visible, width)
        hidden_states = torch.cat([hidden_states, mask_tokens], dim=1)
        hidden_states = torch.gather(hidden_states, 1, ids_restore[:, :, None].expand(-1, -1, width))
        hidden_states = _join_prefix(self, prefix, hidden_states + _patch_positions(self, grid, hidden_states))
        attention_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=_with_prefix_mask(patch_mask, self.num_prefix_tokens),
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask)
        # The class token's output is dropped (norm and prediction are per token, so before them is the same).
        return self.pred(self.norm(hidden_states[:, self.num_prefix_tokens :]))

    def _forward_subset(self, latent, grid, patch_mask, ids_visible, ids_reconstruct) -> torch.Tensor:
        context, queries = _decoder_tokens(self, latent, grid, ids_visible, ids_reconstruct)
        hidden_states = torch.cat([context, queries], dim=1)
        if patch_mask is not None:
            patch_mask = torch.cat([patch_mask.gather(1, ids_visible), patch_mask.gather(1, ids_reconstruct)], dim=1)
            patch_mask = _with_prefix_mask(patch_mask, self.num_prefix_tokens)
        attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=patch_mask
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask)
        return self.pred(self.norm(hidden_states[:, context.shape[1] :]))


def _decoder_tokens(
    decoder: nn.Module, latent: torch.Tensor, grid: tuple[int, int], ids_visible: torch.Tensor, ids_reconstruct
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's inputs for a subset of patches: the projected visible tokens plus their positions (after the
    projected class token, if any), and the mask token plus the position of each patch of `ids_reconstruct`."""
    prefix, context = _split_prefix(decoder.decoder_embed(latent), decoder.num_prefix_tokens)
    table = _patch_positions(decoder, grid, context)
    context = context + nn.functional.embedding(ids_visible, table)
    queries = decoder.mask_token + nn.functional.embedding(ids_reconstruct, table)
    return _join_prefix(decoder, prefix, context), queries


class MaskSpecCrossAttention(nn.Module):
    """Multi-head cross-attention from queries to a context (CrossMAE); kernel from `ALL_ATTENTION_FUNCTIONS`."""

    def __init__(self, config: MaskSpecConfig, hidden_size: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.query = nn.Linear(hidden_size, hidden_size, bias=config.qkv_bias)
        self.key_value = nn.Linear(hidden_size, 2 * hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, context: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, num_queries, _ = hidden_states.shape
        query = self.query(hidden_states).view(batch_size, num_queries, self.num_heads, self.head_dim).transpose(1, 2)
        key_value = self.key_value(context).view(batch_size, context.shape[1], 2, self.num_heads, self.head_dim)
        key, value = (states.transpose(1, 2) for states in key_value.unbind(2))
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        return self.proj(attn_output.reshape(batch_size, num_queries, -1)), attn_weights


class MaskSpecCrossAttentionLayer(GradientCheckpointingLayer):
    """CrossMAE decoder block: pre-norm cross-attention from the queries to the visible tokens, then the MLP."""

    def __init__(self, config: MaskSpecConfig, hidden_size: int, num_heads: int, intermediate_size: int):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.cross_attention = MaskSpecCrossAttention(config, hidden_size, num_heads)
        self.layernorm_after = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.mlp = MaskSpecMLP(config, hidden_size, intermediate_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: torch.Tensor, context: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        attn_output, _ = self.cross_attention(self.layernorm_before(hidden_states), context, attention_mask, **kwargs)
        hidden_states = hidden_states + self.dropout(attn_output)
        return hidden_states + self.dropout(self.mlp(self.layernorm_after(hidden_states)))


class MaskSpecCrossAttentionDecoder(nn.Module):
    """CrossMAE pre-training decoder (`decoder_type="cross_attention"`): queries = mask token + position of each
    patch to reconstruct; every block cross-attends from them to the projected visible tokens (with positions,
    LayerNorm'ed once as `context_norm`), then runs the MLP. No self-attention; cost ~ queries x visible tokens."""

    def __init__(self, config: MaskSpecConfig):
        super().__init__()
        self.config = config
        self.num_prefix_tokens = int(config.use_cls_token)
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        table = _decoder_position_table(config)
        if table is not None:
            self.position_embeddings = table
        self.context_norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.cross_layers = nn.ModuleList(
            [
                MaskSpecCrossAttentionLayer(
                    config,
                    config.decoder_hidden_size,
                    config.decoder_num_attention_heads,
                    config.decoder_intermediate_size,
                )
                for _ in range(config.decoder_num_hidden_layers)
            ]
        )
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.pred = nn.Linear(config.decoder_hidden_size, config.patch_dim)

    def forward(
        self,
        latent: torch.Tensor,
        ids_restore: torch.Tensor,
        grid: tuple[int, int],
        patch_mask: torch.Tensor | None = None,
        ids_visible: torch.Tensor | None = None,
        ids_reconstruct: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predictions `[batch, r, p*p]` for the patches of `ids_reconstruct` (`ids_visible`: the order of `latent`'s
        patch tokens; a class token, if any, comes first in `latent` and is part of the context)."""
        context, hidden_states = _decoder_tokens(self, latent, grid, ids_visible, ids_reconstruct)
        context = self.context_norm(context)
        if patch_mask is not None:
            patch_mask = _with_prefix_mask(patch_mask.gather(1, ids_visible), self.num_prefix_tokens)
        attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=patch_mask, encoder_hidden_states=context
        )
        for layer in self.cross_layers:
            hidden_states = layer(hidden_states, context, attention_mask)
        return self.pred(self.norm(hidden_states))


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------


@auto_docstring
class MaskSpecPreTrainedModel(PreTrainedModel):
    config: MaskSpecConfig
    base_model_prefix = "maskspec"
    main_input_name = "input_values"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["MaskSpecLayer", "MaskSpecCrossAttentionLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # No data-dependent branch while tracing (see `_padding_patch_mask`), so `torch.compile(fullgraph=True)` and
    # `torch.export` work, with dynamic batch and frame counts; the classifier's windowing of inputs longer than
    # `max_frames` is the one eager-only path.
    _can_compile_fullgraph = True
    _can_record_outputs = {
        "hidden_states": MaskSpecLayer,
        "attentions": MaskSpecAttention,
    }
    _input_embed_layer = "patch_embeddings"

    @torch.no_grad()
    def _init_weights(self, module):
        # As in MAE: xavier-uniform linear layers (the patch projection included), zero biases, unit LayerNorms.
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (MaskSpecDecoder, MaskSpecCrossAttentionDecoder)):
            init.normal_(module.mask_token, std=self.config.initializer_range)
        elif isinstance(module, MaskSpecModel) and self.config.use_cls_token:
            init.normal_(module.cls_token, std=self.config.initializer_range)  # MAE's
        table = getattr(module, "position_embeddings", None)
        if isinstance(table, nn.Parameter):
            # A learned table starts from the fixed sinusoids (class-token rows zero), as MAE's fine-tuning does.
            grid = (self.config.num_time_patches, self.config.num_freq_patches)
            init.copy_(table, sinusoidal_table_with_prefix(grid, table.shape[-1], module.num_prefix_tokens))


def _mean_over_patches(sequence_output: torch.Tensor, patch_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the patch tokens `[batch, n, dim]` over the real ones (`patch_mask`, `None`: all)."""
    if patch_mask is None:
        return sequence_output.mean(dim=1)
    weights = patch_mask.to(sequence_output.dtype)[:, :, None]
    return (sequence_output * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _check_mask_ratio(mask_ratio: float) -> None:
    if not 0.05 <= mask_ratio <= 0.95:
        raise ValueError(f"`mask_ratio` must lie in [0.05, 0.95], got {mask_ratio}.")


@auto_docstring
class MaskSpecModel(MaskSpecPreTrainedModel):
    # Pre-training and classification checkpoints also hold a decoder or a head that the encoder does not use: drop
    # them quietly instead of listing them as unexpected.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^fc_norm\.", r"^classifier\."]

    def __init__(self, config: MaskSpecConfig):
        super().__init__(config)
        self.config = config
        self.num_prefix_tokens = int(config.use_cls_token)
        self.patch_embeddings = MaskSpecPatchEmbeddings(config)
        if config.use_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        if config.position_embedding_type == "learned":
            num_rows = self.num_prefix_tokens + config.num_time_patches * config.num_freq_patches
            self.position_embeddings = nn.Parameter(torch.zeros(1, num_rows, config.hidden_size))
        self.layers = nn.ModuleList(
            [
                MaskSpecLayer(config, config.hidden_size, config.num_attention_heads, config.intermediate_size)
                for _ in range(config.num_hidden_layers)
            ]
        )
        # Modules that an option turns off are identities, so their weights are not in the state dict at all.
        self.layernorm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            if config.use_final_layernorm
            else nn.Identity()
        )
        self.post_init()

    def get_input_embeddings(self) -> MaskSpecPatchEmbeddings:
        return self.patch_embeddings

    def check_input_values(self, input_values: torch.Tensor) -> None:
        if input_values is None or input_values.ndim != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            shape = None if input_values is None else tuple(input_values.shape)
            raise ValueError(
                f"`input_values` must be a log-mel spectrogram of shape [batch, frames, {self.config.num_mel_bins}] "
                f"(from MaskSpecFeatureExtractor), got shape {shape}."
            )
        if input_values.shape[1] < self.config.patch_size:
            raise ValueError(
                f"`input_values` has {input_values.shape[1]} frames, fewer than one patch ({self.config.patch_size})."
            )

    def check_position_table(self, input_values: torch.Tensor) -> None:
        """A learned position table covers `max_frames`: longer inputs are an error (the classifier windows them)."""
        num_time_patches = input_values.shape[1] // self.config.patch_size
        if self.config.position_embedding_type == "learned" and type(num_time_patches) is int:
            if num_time_patches > self.config.num_time_patches:
                raise ValueError(
                    f"`input_values` has {input_values.shape[1]} frames ({num_time_patches} time patches), more than "
                    f"`max_frames` ({self.config.max_frames}, {self.config.num_time_patches} time patches) that the "
                    "learned position table covers: split the input into windows of at most `max_frames` frames "
                    "(MaskSpecForAudioClassification does this itself)."
                )

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    @auto_docstring
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        noise: torch.Tensor | None = None,
        mask_strategy: str | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskSpecModelOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_mel_bins)`):
            Normalized log-mel spectrogram from [`MaskSpecFeatureExtractor`]. Any number of frames (at least
            `patch_size`; at most `max_frames` with learned positions) works; trailing frames that do not fill a
            patch are cropped.
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`, *optional*):
            1 for real frames, 0 for padding (from the feature extractor). Padded patches are ignored by attention
            and pooling.
        mask_ratio (`float`, *optional*):
            Mask (remove) this fraction of patches at random before the encoder, in [0.05, 0.95]. No masking when
            `None` (the default, used for embeddings and classification).
        noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
            Drives the masking (patches with the smallest noise stay visible), for deterministic masks.
        mask_strategy (`str`, *optional*):
            Which patches to mask: `"random"`, `"inverse_block"`, `"time"` or `"frequency"` (see
            [`MaskSpecConfig`]); defaults to `config.mask_strategy`.
        """
        self.check_input_values(input_values)
        self.check_position_table(input_values)
        patch_size = self.config.patch_size
        patches, grid = patchify(input_values, patch_size)
        hidden_states = self.patch_embeddings(patches)
        hidden_states = hidden_states + _patch_positions(self, grid, hidden_states)
        patch_mask = _padding_patch_mask(attention_mask, grid, patch_size)

        mask = ids_restore = None
        if mask_ratio is not None or noise is not None:
            mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
            _check_mask_ratio(mask_ratio)
            mask_strategy = self.config.mask_strategy if mask_strategy is None else mask_strategy
            if mask_strategy == "random":  # the paper's masking; the one that traces (compile, export)
                ids_keep, mask, ids_restore = random_masking(
                    hidden_states.shape[0],
                    hidden_states.shape[1],
                    mask_ratio,
                    noise=noise,
                    device=hidden_states.device,
                )
            else:
                ids_keep, mask, ids_restore = structured_masking(
                    grid,
                    mask_ratio,
                    mask_strategy,
                    noise=noise,
                    block_size=self.config.mask_block_size,
                    batch_size=hidden_states.shape[0],
                    device=hidden_states.device,
                )
            hidden_states = torch.gather(
                hidden_states, 1, ids_keep[:, :, None].expand(-1, -1, hidden_states.shape[-1])
            )
            if patch_mask is not None:
                patch_mask = torch.gather(patch_mask, 1, ids_keep)

        # The class token comes after masking, so it is never masked (MAE).
        hidden_states = _join_prefix(self, getattr(self, "cls_token", None), hidden_states)
        encoder_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=_with_prefix_mask(patch_mask, self.num_prefix_tokens),
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, encoder_mask, **kwargs)
        cls_output, sequence_output = _split_prefix(self.layernorm(hidden_states), self.num_prefix_tokens)
        cls_output = None if cls_output is None else cls_output[:, 0]
        pooled_output = cls_output if self.config.pooling == "cls" else _mean_over_patches(sequence_output, patch_mask)

        return MaskSpecModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            mask=mask,
            ids_restore=ids_restore,
            patch_attention_mask=patch_mask,
            grid=None if is_torchdynamo_exporting() else grid,
            cls_hidden_state=cls_output,
        )


@auto_docstring(
    custom_intro="""
    MaskSpec encoder with the reconstruction decoder on top, for self-supervised masked spectrogram pre-training.
    """
)
class MaskSpecForPreTraining(MaskSpecPreTrainedModel):
    # A classifier checkpoint's head is of no use here (its missing decoder is still reported).
    _keys_to_ignore_on_load_unexpected = [r"^fc_norm\.", r"^classifier\."]

    def __init__(self, config: MaskSpecConfig):
        super().__init__(config)
        self.maskspec = MaskSpecModel(config)
        decoder_class = MaskSpecCrossAttentionDecoder if config.decoder_type == "cross_attention" else MaskSpecDecoder
        self.decoder = decoder_class(config)
        self.post_init()

    def patchify(self, input_values: torch.Tensor) -> torch.Tensor:
        """`[batch, frames, mel]` -> `[batch, n, p*p]` (the reconstruction targets)."""
        return patchify(input_values, self.config.patch_size)[0]

    def unpatchify(self, patches: torch.Tensor, num_frames: int) -> torch.Tensor:
        """`[batch, n, p*p]` -> spectrogram `[batch, frames', mel']` covering the whole patches of `num_frames`."""
        grid = (num_frames // self.config.patch_size, self.config.num_freq_patches)
        return unpatchify(patches, grid, self.config.patch_size)

    def reconstruct_spectrogram(
        self, input_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spectrograms for figures: (original, masked input, reconstruction with the masked patches filled in).

        All three cover the whole patches of the input. With `norm_pix_loss` the predictions are per-patch
        normalized, so they are mapped back with each original patch's mean and std (as MAE's figures do).
        Masked patches are NaN in the masked input (draw them blank).
        """
        target = self.patchify(input_values)
        predictions = logits.to(target.dtype)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
            predictions = predictions * std + mean
        masked = mask.bool()[:, :, None]
        num_frames = input_values.shape[1]
        original = self.unpatchify(target, num_frames)
        masked_input = self.unpatchify(target.masked_fill(masked, float("nan")), num_frames)
        reconstruction = self.unpatchify(torch.where(masked, predictions, target), num_frames)
        return original, masked_input, reconstruction

    @can_return_tuple
    @auto_docstring
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        noise: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskSpecForPreTrainingOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_mel_bins)`):
            Normalized log-mel spectrogram from [`MaskSpecFeatureExtractor`].
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`, *optional*):
            1 for real frames, 0 for padding; padded patches are left out of attention and of the loss.
        mask_ratio (`float`, *optional*):
            Overrides `config.mask_ratio` for this call; must lie in [0.05, 0.95].
        noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
            Drives the masking (patches with the smallest noise stay visible), for deterministic masks.

        Example:

        ```python
        >>> import numpy as np
        >>> from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForPreTraining

        >>> extractor = MaskSpecFeatureExtractor()
        >>> model = MaskSpecForPreTraining(MaskSpecConfig.from_preset("tiny"))
        >>> inputs = extractor(np.random.randn(32000).astype("float32"), sampling_rate=32000, return_tensors="pt")
        >>> outputs = model(**inputs)
        >>> outputs.loss, outputs.logits.shape
        ```"""
        mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        outputs: MaskSpecModelOutput = self.maskspec(
            input_values, attention_mask=attention_mask, mask_ratio=mask_ratio, noise=noise, **kwargs
        )
        # The grid from the input shape: `outputs.grid` is `None` while exporting.
        grid = (input_values.shape[1] // self.config.patch_size, self.config.num_freq_patches)
        patch_mask = _padding_patch_mask(attention_mask, grid, self.config.patch_size)
        latent, ids_restore = outputs.last_hidden_state, outputs.ids_restore
        num_visible = latent.shape[1]
        if outputs.cls_hidden_state is not None:
            latent = torch.cat([outputs.cls_hidden_state[:, None], latent], dim=1)  # MAE's decoder input
        targets = self.patchify(input_values)
        ratio = self.config.decoder_reconstruct_ratio if self.training else 1.0
        if self.config.decoder_type == "self_attention" and ratio == 1.0:
            # The paper's decoder over all patches, in patch order.
            logits = self.decoder(latent, ids_restore, grid, patch_mask)
            reconstruction_mask = outputs.mask
            loss = reconstruction_loss(logits, targets, outputs.mask, self.config.norm_pix_loss, patch_mask)
        else:
            # The decoder over the visible tokens and the reconstructed subset only.
            ids_shuffle = torch.argsort(ids_restore, dim=1)  # visible, then masked in noise order
            count = num_reconstructed(ids_restore.shape[1] - num_visible, ratio)
            ids_visible = ids_shuffle[:, :num_visible]
            ids_reconstruct = ids_shuffle[:, num_visible : num_visible + count]
            predictions = self.decoder(latent, ids_restore, grid, patch_mask, ids_visible, ids_reconstruct)
            index = ids_reconstruct[:, :, None].expand(-1, -1, targets.shape[-1])
            loss = reconstruction_loss(
                predictions,
                targets.gather(1, index),
                torch.ones_like(ids_reconstruct, dtype=outputs.mask.dtype),
                self.config.norm_pix_loss,
                None if patch_mask is None else patch_mask.gather(1, ids_reconstruct),
            )
            logits = predictions.new_zeros(targets.shape).scatter(1, index, predictions)
            reconstruction_mask = torch.zeros_like(outputs.mask).scatter(1, ids_reconstruct, 1.0)
        return MaskSpecForPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=outputs.mask,
            ids_restore=ids_restore,
            grid=grid,
            reconstruction_mask=reconstruction_mask,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


def _time_windows(num_frames: int, window: int, overlap: float, patch_size: int) -> list[int]:
    """Start frames of windows of `window` frames covering `num_frames`, the last one flush with the end."""
    hop = max(patch_size, int(window * (1.0 - overlap)) // patch_size * patch_size)
    starts = list(range(0, num_frames - window, hop))
    return starts + [num_frames - window]


@auto_docstring(
    custom_intro="""
    MaskSpec encoder (all patches, no masking) with pooling (`config.pooling`: mean over the patches or the class
    token), a LayerNorm (`fc_norm`, unless `config.use_fc_norm=False`) and a linear head for single- or multi-label
    audio classification. Inputs longer than `config.max_frames` are cut into overlapping windows whose logits are
    averaged.
    """
)
class MaskSpecForAudioClassification(MaskSpecPreTrainedModel):
    # Pre-training checkpoints carry a decoder that classification does not use: drop it quietly.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: MaskSpecConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.maskspec = MaskSpecModel(config)
        self.fc_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.use_fc_norm else nn.Identity()
        )
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def freeze_feature_encoder(self):
        """Freeze the patch projection (what transformers' audio-classification example expects to exist)."""
        for param in self.maskspec.patch_embeddings.parameters():
            param.requires_grad = False

    def _window_starts(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[list, list]:
        """Each clip's windows: (clip index, start frame) of every window, as lists.

        Padding sits at the end of a clip (the feature extractor's convention), so a clip's length is the number of
        ones in its mask. A clip no longer than one window keeps a single window starting at frame 0.
        """
        num_frames = input_values.shape[1]
        window = self.config.max_frames
        lengths = [num_frames] * input_values.shape[0] if attention_mask is None else attention_mask.sum(1).tolist()
        clip_index, starts = [], []
        for clip, length in enumerate(lengths):
            clip_starts = (
                [0]
                if length <= window
                else _time_windows(int(length), window, self.config.inference_window_overlap, self.config.patch_size)
            )
            clip_index += [clip] * len(clip_starts)
            starts += clip_starts
        return clip_index, starts

    def _clip_logits(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None, **kwargs
    ) -> tuple[torch.Tensor, MaskSpecModelOutput]:
        """Encoder, pooling and head on inputs of at most one window each."""
        patchout = self.config.patchout_ratio if self.training and self.config.patchout_ratio > 0 else None
        outputs: MaskSpecModelOutput = self.maskspec(
            input_values, attention_mask=attention_mask, mask_ratio=patchout, mask_strategy="random", **kwargs
        )
        return self.classifier(self.dropout(self.fc_norm(outputs.pooler_output))), outputs

    def _windowed_logits(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None, **kwargs
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """Logits of clips longer than a window: the mean over each clip's windows.

        The windows go through the encoder `config.inference_window_batch_size` at a time, each chunk gathered just
        before its pass, so memory stays flat in the clip length. Recorded hidden states and attentions are the
        windows', concatenated in window order.
        """
        clip_index, starts = self._window_starts(input_values, attention_mask)
        device, window = input_values.device, self.config.max_frames
        chunk_size = self.config.inference_window_batch_size
        window_logits, hidden_states, attentions = [], [], []
        for first in range(0, len(starts), chunk_size):
            clips = torch.tensor(clip_index[first : first + chunk_size], device=device)[:, None]
            frames = torch.tensor(starts[first : first + chunk_size], device=device)[:, None]
            frames = frames + torch.arange(window, device=device)
            chunk_mask = None if attention_mask is None else attention_mask[clips, frames]
            logits, outputs = self._clip_logits(input_values[clips, frames], chunk_mask, **kwargs)
            window_logits.append(logits)
            hidden_states.append(outputs.hidden_states)
            attentions.append(outputs.attentions)

        logits = torch.cat(window_logits)
        clip_index = torch.tensor(clip_index, device=device)
        batch_size = input_values.shape[0]
        summed = logits.new_zeros(batch_size, logits.shape[-1]).index_add_(0, clip_index, logits)
        logits = summed / torch.bincount(clip_index, minlength=batch_size).to(logits.dtype)[:, None]
        return logits, _concat_per_layer(hidden_states), _concat_per_layer(attentions)

    @can_return_tuple
    @auto_docstring
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_mel_bins)`):
            Normalized log-mel spectrogram from [`MaskSpecFeatureExtractor`], any length. Longer than
            `config.max_frames`: split into windows overlapping by `config.inference_window_overlap`, logits
            averaged over the windows that hold audio; the windows run `config.inference_window_batch_size` at a
            time.
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`, *optional*):
            1 for real frames, 0 for padding.
        labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Class indices (single-label) or multi-hot targets (`problem_type="multi_label_classification"`).
        """
        self.maskspec.check_input_values(input_values)
        if input_values.shape[1] > self.config.max_frames:
            logits, hidden_states, attentions = self._windowed_logits(input_values, attention_mask, **kwargs)
        else:
            logits, outputs = self._clip_logits(input_values, attention_mask, **kwargs)
            hidden_states, attentions = outputs.hidden_states, outputs.attentions

        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)

        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states, attentions=attentions)


def _concat_per_layer(per_chunk: list[tuple[torch.Tensor, ...] | None]) -> tuple[torch.Tensor, ...] | None:
    """Per-chunk tuples of per-layer tensors -> one tuple of per-layer tensors concatenated along the batch."""
    if not per_chunk or per_chunk[0] is None:
        return None
    return tuple(torch.cat(layer) for layer in zip(*per_chunk))


__all__ = [
    "MaskSpecForAudioClassification",
    "MaskSpecForPreTraining",
    "MaskSpecModel",
    "MaskSpecPreTrainedModel",
    "frames_to_patch_mask",
    "learned_position_embedding",
    "patchify",
    "num_reconstructed",
    "random_masking",
    "reconstruction_loss",
    "structured_masking",
    "sinusoidal_position_embedding",
    "sinusoidal_table_with_prefix",
    "unpatchify",
]
