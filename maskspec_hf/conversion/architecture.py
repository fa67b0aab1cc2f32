"""What a checkpoint is, read from its weights: sizes, grid, class token, positions, pooling, decoder, head.

Everything that the weights determine is read from them (width, depth, FFN, patch size, grid, class token, which
LayerNorms exist, the head); the head counts are not stored in the weights and come from the model name in the
stored training arguments, else from the official widths (`--config_overrides` sets them for anything else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from .sources import Source
from .vit_mapping import (
    Grid,
    block_indices,
    is_our_sinusoid,
    is_plain_block_stack,
    position_table_to_ours,
    uses_zero_k_bias,
)


# Heads of the timm / MAE sizes (head width 64) and of the official decoders; neither is stored in the weights.
ENCODER_HEADS = {"small": 6, "base": 12, "large": 16, "huge": 16}
ENCODER_HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
DECODER_HEADS_BY_WIDTH = {384: 6, 512: 16}
_DECODER_KEYS = ("decoder_embed.weight", "decoder_embed.bias", "mask_token", "decoder_pos_embed")
_DECODER_END_KEYS = ("decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias")


@dataclass
class Architecture:
    """A checkpoint's structure in MaskSpec-HF terms."""

    task: str  # "pretraining" (encoder + decoder), "encoder" (encoder only) or "audio-classification"
    layout: str
    grid: Grid
    has_cls: bool
    zero_k_bias: bool
    config_fields: dict
    with_decoder: bool = False
    decoder_zero_k_bias: bool = False
    left_out: list[str] = field(default_factory=list)  # source keys deliberately not converted
    notes: list[str] = field(default_factory=list)  # what was decided, for the log and the model card

    @property
    def encoder_positions(self) -> str:
        return self.config_fields["position_embedding_type"]

    @property
    def decoder_positions(self) -> str | None:
        return self.config_fields.get("decoder_position_embedding_type") if self.with_decoder else None


def _require(state_dict: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise ValueError(
            f"The checkpoint lacks {', '.join(missing)}: it is not a timm/MAE ViT checkpoint of this source."
        )


def _mel_bins(source: Source, args: dict) -> int:
    """The model's mel bins: MSM-MAE stores its image size in the arguments (`input_size` = [mel, frames])."""
    size = args.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and source.layout == "freq_time":
        return int(size[0])
    return source.num_mel_bins


def _grid(state_dict: dict, source: Source, args: dict, has_cls: bool) -> Grid:
    patch_size = state_dict["patch_embed.proj.weight"].shape[-1]
    num_freq = _mel_bins(source, args) // patch_size
    rows = state_dict["pos_embed"].shape[-2] - (1 if has_cls else 0)
    if num_freq < 1 or rows % num_freq:
        raise ValueError(
            f"pos_embed has {rows} patch rows, not a multiple of the {num_freq} frequency patches of a "
            f"{source.num_mel_bins}-bin {source.title} input: the checkpoint is not a {source.title} model."
        )
    return Grid(time=rows // num_freq, freq=num_freq, patch_size=patch_size)


def _encoder_heads(width: int, args: dict, notes: list[str], overrides: dict) -> int:
    if "num_attention_heads" in overrides:
        return overrides["num_attention_heads"]
    match = re.search(r"vit_(small|base|large|huge)", str(args.get("model", "")))
    if match:
        return ENCODER_HEADS[match.group(1)]
    if width in ENCODER_HEADS_BY_WIDTH:
        return ENCODER_HEADS_BY_WIDTH[width]
    heads = max(1, width // 64)
    notes.append(f"Encoder heads are not stored in the weights; assumed {heads} (width / 64).")
    return heads


def _decoder_heads(width: int, source: Source, notes: list[str], overrides: dict) -> int:
    if "decoder_num_attention_heads" in overrides:
        return overrides["decoder_num_attention_heads"]
    if width in DECODER_HEADS_BY_WIDTH:
        return DECODER_HEADS_BY_WIDTH[width]
    notes.append(f"Decoder heads are not stored in the weights; assumed {source.decoder_heads} ({source.title}'s).")
    return source.decoder_heads


def _frames(source: Source, task: str, grid: Grid, args: dict) -> int:
    """Frames of one model window: the official image width when it gives this grid (MaskSpec's 1000 frames hold
    62 patches), else whole patches."""
    size = args.get("input_size")
    candidates = [size[1]] if isinstance(size, (list, tuple)) and len(size) == 2 else []
    candidates.append(
        source.image_frames.get("audio-classification" if task == "audio-classification" else "pretraining")
    )
    for frames in candidates:
        if frames and int(frames) // grid.patch_size == grid.time:
            return int(frames)
    return grid.time * grid.patch_size


def _positions(table: torch.Tensor, grid: Grid, layout: str, has_cls: bool) -> str:
    """`"sinusoidal"` when the checkpoint's table is exactly ours (MAE's fixed 2-D sin-cos on a frequency x time
    grid), so the converted model takes any length; else `"learned"`: the table itself, for its fixed grid."""
    ours = position_table_to_ours(table, grid, layout, has_cls)
    return "sinusoidal" if is_our_sinusoid(ours, grid, has_cls) else "learned"


def _head_fields(state_dict: dict, has_cls: bool, notes: list[str]) -> dict:
    """Pooling and LayerNorms of a fine-tuned classifier (timm `global_pool`: mean + `fc_norm`, no `norm`)."""
    if "fc_norm.weight" in state_dict:
        return {
            "pooling": "mean",
            "use_fc_norm": True,
            "use_final_layernorm": "norm.weight" in state_dict,
            "num_labels": state_dict["head.weight"].shape[0],
        }
    if not has_cls:
        raise ValueError("The classifier has neither fc_norm (mean pooling) nor a class token to pool.")
    notes.append("Class-token pooling (timm `global_pool=False`): the head reads the normalized class token.")
    return {
        "pooling": "cls",
        "use_fc_norm": False,
        "use_final_layernorm": True,
        "num_labels": state_dict["head.weight"].shape[0],
    }


def _decoder_fields(state_dict: dict, source: Source, grid: Grid, has_cls: bool, notes, overrides) -> dict | None:
    """The decoder's config fields when it is a plain MAE decoder (ViT blocks), else `None`."""
    zero_k_bias = uses_zero_k_bias(state_dict, "decoder_blocks")
    plain = all(key in state_dict for key in _DECODER_KEYS + _DECODER_END_KEYS) and is_plain_block_stack(
        state_dict, "decoder_blocks", zero_k_bias
    )
    if not plain or state_dict["decoder_pred.weight"].shape[0] != grid.patch_size**2:
        return None
    width = state_dict["decoder_embed.weight"].shape[0]
    return {
        "decoder_hidden_size": width,
        "decoder_num_hidden_layers": len(block_indices(state_dict, "decoder_blocks")),
        "decoder_num_attention_heads": _decoder_heads(width, source, notes, overrides),
        "decoder_intermediate_size": state_dict["decoder_blocks.0.mlp.fc1.weight"].shape[0],
        "decoder_position_embedding_type": _positions(state_dict["decoder_pos_embed"], grid, source.layout, has_cls),
    }


def infer_architecture(
    state_dict: dict, source: Source, args: dict | None = None, overrides: dict | None = None
) -> Architecture:
    """Read the structure of an official checkpoint's `state_dict` (already loaded, see `safe_load`).

    `args` are the training arguments stored with it (the model name gives the head counts); `overrides` are
    config fields the caller sets (head counts of non-standard sizes are taken from there without a guess)."""
    args, overrides = dict(args or {}), dict(overrides or {})
    _require(state_dict, "patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed", "blocks.0.mlp.fc1.weight")
    notes: list[str] = []
    has_cls = "cls_token" in state_dict
    grid = _grid(state_dict, source, args, has_cls)
    width = state_dict["patch_embed.proj.weight"].shape[0]
    zero_k_bias = uses_zero_k_bias(state_dict)
    fields = {
        "hidden_size": width,
        "num_hidden_layers": len(block_indices(state_dict, "blocks")),
        "num_attention_heads": _encoder_heads(width, args, notes, overrides),
        "intermediate_size": state_dict["blocks.0.mlp.fc1.weight"].shape[0],
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "qkv_bias": True,
        "num_mel_bins": _mel_bins(source, args),
        "patch_size": grid.patch_size,
        "use_cls_token": has_cls,
        "position_embedding_type": _positions(state_dict["pos_embed"], grid, source.layout, has_cls),
        "use_final_layernorm": "norm.weight" in state_dict,
        "mask_ratio": float(args.get("mask_ratio", source.mask_ratio)),
        "norm_pix_loss": bool(args.get("norm_pix_loss", source.norm_pix_loss)),
    }
    architecture = Architecture("encoder", source.layout, grid, has_cls, zero_k_bias, fields, notes=notes)
    if "head.weight" in state_dict:
        architecture.task = "audio-classification"
        fields.update(_head_fields(state_dict, has_cls, notes))
    elif "decoder_embed.weight" in state_dict:
        decoder = _decoder_fields(state_dict, source, grid, has_cls, notes, overrides)
        if decoder is None:
            architecture.left_out = sorted(k for k in state_dict if k.startswith("decoder") or k == "mask_token")
            notes.append(
                "Encoder only: the checkpoint's decoder is not a plain ViT decoder, so its "
                f"{len(architecture.left_out)} weights are left out."
            )
        else:
            architecture.task, architecture.with_decoder = "pretraining", True
            architecture.decoder_zero_k_bias = uses_zero_k_bias(state_dict, "decoder_blocks")
            fields.update(decoder)
            if not has_cls and source.decoder_without_cls_note:
                notes.append(source.decoder_without_cls_note)
    fields["max_frames"] = _frames(source, architecture.task, grid, args)
    return architecture


__all__ = ["Architecture", "infer_architecture"]
