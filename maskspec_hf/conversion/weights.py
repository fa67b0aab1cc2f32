"""Rename and reshape an official state dict into MaskSpec-HF's weight names (see `vit_mapping` for the maths).

Every weight of the checkpoint is accounted for: converted, deliberately left out (an incompatible decoder, a fixed
position table that our sinusoid reproduces), or an error naming it: a checkpoint with unknown weights is not
what its `--source` says, and converting it silently would give a model that computes something else.
"""

from __future__ import annotations

import torch

from .architecture import Architecture
from .vit_mapping import (
    block_indices,
    block_source_keys,
    block_weights,
    patch_projection_weight,
    pixel_rows_to_ours,
    position_table_to_ours,
)


def _encoder(state_dict: dict, arch: Architecture, used: set) -> dict:
    out = {
        "maskspec.patch_embeddings.projection.weight": patch_projection_weight(
            state_dict["patch_embed.proj.weight"], arch.layout
        ),
        "maskspec.patch_embeddings.projection.bias": state_dict["patch_embed.proj.bias"],
    }
    used |= {"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed"}
    if arch.has_cls:
        out["maskspec.cls_token"] = state_dict["cls_token"]
        used.add("cls_token")
    if arch.encoder_positions == "learned":
        table = position_table_to_ours(state_dict["pos_embed"], arch.grid, arch.layout, arch.has_cls)
        out["maskspec.position_embeddings"] = table
    for index in block_indices(state_dict, "blocks"):
        prefix = f"blocks.{index}"
        out |= block_weights(state_dict, prefix, f"maskspec.layers.{index}", arch.zero_k_bias)
        used |= block_source_keys(prefix, arch.zero_k_bias)
    if arch.config_fields["use_final_layernorm"]:
        out["maskspec.layernorm.weight"], out["maskspec.layernorm.bias"] = (
            state_dict["norm.weight"],
            state_dict["norm.bias"],
        )
        used |= {"norm.weight", "norm.bias"}
    return out


def _classifier(state_dict: dict, arch: Architecture, used: set) -> dict:
    out = {"classifier.weight": state_dict["head.weight"], "classifier.bias": state_dict["head.bias"]}
    used |= {"head.weight", "head.bias"}
    if arch.config_fields["use_fc_norm"]:
        out["fc_norm.weight"], out["fc_norm.bias"] = state_dict["fc_norm.weight"], state_dict["fc_norm.bias"]
        used |= {"fc_norm.weight", "fc_norm.bias"}
    return out


def _decoder(state_dict: dict, arch: Architecture, used: set) -> dict:
    p = arch.grid.patch_size
    out = {
        "decoder.decoder_embed.weight": state_dict["decoder_embed.weight"],
        "decoder.decoder_embed.bias": state_dict["decoder_embed.bias"],
        "decoder.mask_token": state_dict["mask_token"],
        "decoder.norm.weight": state_dict["decoder_norm.weight"],
        "decoder.norm.bias": state_dict["decoder_norm.bias"],
        # The prediction's rows are the pixels of a patch: MAE's patchify order -> ours.
        "decoder.pred.weight": pixel_rows_to_ours(state_dict["decoder_pred.weight"], p, arch.layout),
        "decoder.pred.bias": pixel_rows_to_ours(state_dict["decoder_pred.bias"], p, arch.layout),
    }
    used |= {
        "decoder_embed.weight",
        "decoder_embed.bias",
        "mask_token",
        "decoder_pos_embed",
        "decoder_norm.weight",
        "decoder_norm.bias",
        "decoder_pred.weight",
        "decoder_pred.bias",
    }
    if arch.decoder_positions == "learned":
        table = position_table_to_ours(state_dict["decoder_pos_embed"], arch.grid, arch.layout, arch.has_cls)
        out["decoder.position_embeddings"] = table
    for index in block_indices(state_dict, "decoder_blocks"):
        prefix = f"decoder_blocks.{index}"
        out |= block_weights(state_dict, prefix, f"decoder.layers.{index}", arch.decoder_zero_k_bias)
        used |= block_source_keys(prefix, arch.decoder_zero_k_bias)
    return out


def convert_weights(state_dict: dict[str, torch.Tensor], arch: Architecture) -> dict[str, torch.Tensor]:
    """MaskSpec-HF state dict (float32, contiguous) of the model `arch` describes."""
    used: set[str] = set(arch.left_out)
    out = _encoder(state_dict, arch, used)
    if arch.task == "audio-classification":
        out |= _classifier(state_dict, arch, used)
    if arch.with_decoder:
        out |= _decoder(state_dict, arch, used)
    unknown = sorted(set(state_dict) - used)
    if unknown:
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        raise ValueError(
            f"The checkpoint holds weights a {arch.task} ViT of this source does not have: {shown}. It is not a "
            "checkpoint of the --source given, or a variant this converter does not support."
        )
    return {name: tensor.detach().to(torch.float32).contiguous() for name, tensor in out.items()}


__all__ = ["convert_weights"]
