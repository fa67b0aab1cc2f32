"""timm / MAE ViT weights -> MaskSpec-HF weights, for spectrogram images in either orientation.

The official models are timm ViTs over a one-channel spectrogram image with a Conv2d patch projection (kernel =
stride = p). MaskSpec and MSM-MAE lay the image out frequency x time (H = mel, W = frames), AudioMAE time x
frequency (H = frames, W = mel). MaskSpec-HF takes `[batch, frames, mel]`, orders patches time-major
(t * F + f) and flattens each patch frames-first (dt * p + df). Attention, LayerNorm and the MLP do not care about
token order, so permuting the patch projection's input, the position tables' rows and the decoder's output rows is
all it takes for the converted model to compute the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..modeling_maskspec import sinusoidal_position_embedding


FREQ_TIME = "freq_time"  # image H = mel bins, W = frames (MaskSpec, MSM-MAE)
TIME_FREQ = "time_freq"  # image H = frames, W = mel bins (AudioMAE)

# The weights of one pre-norm timm block, by their name inside the block.
_BLOCK_NAMES = {
    "norm1": "layernorm_before",
    "attn.qkv": "attention.qkv",
    "attn.proj": "attention.proj",
    "norm2": "layernorm_after",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_KEY = re.compile(r"^(?P<stack>blocks|decoder_blocks)\.(?P<index>\d+)\.(?P<rest>.+)$")


@dataclass(frozen=True)
class Grid:
    """The fixed patch grid of a checkpoint: `time` x `freq` patches of side `patch_size`."""

    time: int
    freq: int
    patch_size: int

    @property
    def num_patches(self) -> int:
        return self.time * self.freq


def patch_projection_weight(conv_weight: torch.Tensor, layout: str) -> torch.Tensor:
    """Conv2d weight `[d, 1, p, p]` -> our Linear weight `[d, p*p]` on frames-first flattened patches."""
    if conv_weight.ndim != 4 or conv_weight.shape[1] != 1 or conv_weight.shape[2] != conv_weight.shape[3]:
        raise ValueError(
            f"patch_embed.proj.weight must be a one-channel square Conv2d kernel [d, 1, p, p], got "
            f"{tuple(conv_weight.shape)}: MaskSpec-HF supports square non-overlapping patches only."
        )
    kernel = conv_weight[:, 0]  # [d, H-offset, W-offset]
    if layout == FREQ_TIME:
        kernel = kernel.transpose(1, 2)  # -> [d, dt, df]
    return kernel.reshape(kernel.shape[0], -1).contiguous()


def patch_rows_to_ours(rows: torch.Tensor, grid: Grid, layout: str) -> torch.Tensor:
    """Per-patch rows `[n, ...]` in the image's row-major patch order -> our time-major order (t * F + f)."""
    if layout == TIME_FREQ:
        return rows.contiguous()  # H = time: row-major is already t * F + f
    return rows.reshape(grid.freq, grid.time, *rows.shape[1:]).transpose(0, 1).reshape(rows.shape).contiguous()


def pixel_rows_to_ours(rows: torch.Tensor, patch_size: int, layout: str) -> torch.Tensor:
    """Rows indexed by a pixel of a patch in MAE's `patchify` order (H offset slow) -> ours (dt * p + df)."""
    if layout == TIME_FREQ:
        return rows.contiguous()
    p = patch_size
    return rows.reshape(p, p, *rows.shape[1:]).transpose(0, 1).reshape(rows.shape).contiguous()


def position_table_to_ours(table: torch.Tensor, grid: Grid, layout: str, has_cls: bool) -> torch.Tensor:
    """`pos_embed` `[1, c + n, d]` -> the same rows in our order (class token row first)."""
    c = 1 if has_cls else 0
    rows = table.reshape(table.shape[-2], table.shape[-1])
    if rows.shape[0] != c + grid.num_patches:
        raise ValueError(
            f"The position table has {rows.shape[0]} rows; a {grid.freq} x {grid.time} patch grid"
            f"{' plus the class token' if has_cls else ''} needs {c + grid.num_patches}."
        )
    patches = patch_rows_to_ours(rows[c:], grid, layout)
    return torch.cat([rows[:c], patches])[None].contiguous()


def is_our_sinusoid(table_ours: torch.Tensor, grid: Grid, has_cls: bool, atol: float = 1e-6) -> bool:
    """Whether a table (already in our order) is exactly MaskSpec-HF's fixed 2-D sinusoid (class row zeros).

    MAE's `get_2d_sincos_pos_embed` on a frequency x time grid gives it (its first half of the channels encodes the
    column, i.e. time); AudioMAE's time x frequency grid swaps the halves, and a fine-tuned timm table has learned.
    """
    c = 1 if has_cls else 0
    rows = table_ours[0].float()
    expected = sinusoidal_position_embedding((grid.time, grid.freq), rows.shape[-1])
    if has_cls and rows[0].abs().max() > atol:
        return False
    return bool(torch.allclose(rows[c:], expected, rtol=0.0, atol=atol))


def block_weights(source: dict[str, torch.Tensor], prefix: str, target: str, zero_k_bias: bool) -> dict:
    """The weights of one pre-norm block `prefix` (timm names) under our block name `target`.

    `zero_k_bias`: the BEiT-style attention of MSM-MAE, with a bias-free `qkv` plus `q_bias` and `v_bias` (the key
    bias is always zero); we fold them into our fused qkv bias as `[q_bias, 0, v_bias]`.
    """
    out = {}
    for name, ours in _BLOCK_NAMES.items():
        out[f"{target}.{ours}.weight"] = source[f"{prefix}.{name}.weight"]
        if name == "attn.qkv" and zero_k_bias:
            q_bias, v_bias = source[f"{prefix}.attn.q_bias"], source[f"{prefix}.attn.v_bias"]
            out[f"{target}.{ours}.bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])
        else:
            out[f"{target}.{ours}.bias"] = source[f"{prefix}.{name}.bias"]
    return out


def block_source_keys(prefix: str, zero_k_bias: bool) -> set[str]:
    """The timm names `block_weights` reads for one block."""
    keys = {f"{prefix}.{name}.{kind}" for name in _BLOCK_NAMES for kind in ("weight", "bias")}
    if zero_k_bias:
        keys = (keys - {f"{prefix}.attn.qkv.bias"}) | {f"{prefix}.attn.q_bias", f"{prefix}.attn.v_bias"}
    return keys


def block_indices(state_dict: dict, stack: str) -> list[int]:
    """Sorted block indices present under `blocks.` or `decoder_blocks.`."""
    indices = set()
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match and match.group("stack") == stack:
            indices.add(int(match.group("index")))
    if indices and sorted(indices) != list(range(len(indices))):
        raise ValueError(f"The checkpoint's {stack}.* indices are not 0..{len(indices) - 1}: {sorted(indices)}.")
    return sorted(indices)


def is_plain_block_stack(state_dict: dict, stack: str, zero_k_bias: bool) -> bool:
    """Whether every block of `stack` holds exactly a pre-norm ViT block's weights (no window attention etc.)."""
    indices = block_indices(state_dict, stack)
    if not indices:
        return False
    for index in indices:
        prefix = f"{stack}.{index}"
        present = {key for key in state_dict if key.startswith(prefix + ".")}
        if present != block_source_keys(prefix, zero_k_bias):
            return False
    return True


def uses_zero_k_bias(state_dict: dict, stack: str = "blocks") -> bool:
    """Whether the blocks use BEiT's split `q_bias` / `v_bias` (MSM-MAE) instead of a `qkv.bias`."""
    return f"{stack}.0.attn.q_bias" in state_dict


__all__ = [
    "FREQ_TIME",
    "TIME_FREQ",
    "Grid",
    "block_indices",
    "block_source_keys",
    "block_weights",
    "is_our_sinusoid",
    "is_plain_block_stack",
    "patch_projection_weight",
    "patch_rows_to_ours",
    "pixel_rows_to_ours",
    "position_table_to_ours",
    "uses_zero_k_bias",
]
