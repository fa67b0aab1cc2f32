"""Official-format checkpoints and an independent reference forward, for the conversion tests.

Each fixture is a checkpoint with exactly the official key names, container (MAE's `save_model` dict with an
`argparse.Namespace`) and patch grid of one source, at a tiny width and with random values. The reference is plain
timm / MAE ViT maths on the official image (frequency x time for MaskSpec and MSM-MAE, time x frequency for
AudioMAE), with a Conv2d patch embedding, fused qkv and the official position tables, written from the official
code's formulas, independently of `maskspec_hf.conversion`.
"""

import argparse
import pathlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskspec_hf.modeling_maskspec import sinusoidal_position_embedding


WIDTH, HEADS, LAYERS = 32, 2, 2  # blocks have an FFN of 4 x width, as the official mlp_ratio 4
DECODER_WIDTH, DECODER_HEADS, DECODER_LAYERS = 32, 2, 2
PATCH = 16
# Head counts are not in the weights; these tiny widths are not official ones.
OVERRIDES = f"num_attention_heads={HEADS},decoder_num_attention_heads={DECODER_HEADS}"


@dataclass
class Fixture:
    name: str
    source: str
    layout: str  # "freq_time" (image [mel, frames]) or "time_freq" (image [frames, mel])
    mel: int
    frames: int  # input frames of one model window
    time_patches: int
    cls: bool = True
    k_bias_zero: bool = False  # MSM-MAE's q_bias / v_bias
    final_norm: bool = True
    fc_norm: bool = False
    head: bool = False
    decoder: str | None = None  # "plain" (MAE ViT blocks) or "swin" (AudioMAE's local decoder)
    decoder_1d_positions: bool = False  # MSM-MAE's 1-D decoder table
    file_name: str = "checkpoint-99.pth"

    @property
    def freq_patches(self) -> int:
        return self.mel // PATCH


FIXTURES = {
    "maskspec-finetuned": Fixture(
        "maskspec-finetuned",
        "maskspec",
        "freq_time",
        128,
        1000,
        62,
        final_norm=False,
        fc_norm=True,
        head=True,
        file_name="AudioSet_Pretrained_Finetuned.pth",
    ),
    "maskspec-pretrained": Fixture("maskspec-pretrained", "maskspec", "freq_time", 128, 992, 62, decoder="plain"),
    "msm-mae-80x208": Fixture(
        "msm-mae-80x208",
        "msm-mae",
        "freq_time",
        80,
        208,
        13,
        k_bias_zero=True,
        decoder="plain",
        decoder_1d_positions=True,
        file_name="80x208p16x16_0422/checkpoint-100.pth",
    ),
    "msm-mae-no-cls": Fixture(
        "msm-mae-no-cls",
        "msm-mae",
        "freq_time",
        80,
        208,
        13,
        cls=False,
        k_bias_zero=True,
        decoder="plain",
        decoder_1d_positions=True,
        file_name="80x208p16x16_nocls/checkpoint-100.pth",
    ),
    "audiomae-finetuned": Fixture(
        "audiomae-finetuned",
        "audiomae",
        "time_freq",
        128,
        1024,
        64,
        final_norm=False,
        fc_norm=True,
        head=True,
        file_name="finetuned.pth",
    ),
    "audiomae-pretrained": Fixture(
        "audiomae-pretrained", "audiomae", "time_freq", 128, 1024, 64, decoder="swin", file_name="pretrained.pth"
    ),
}


# ----------------------------------------------------------------------------------------------------------------------
# The official position tables, written from the formulas of MAE's util/pos_embed.py and MSM-MAE's decoder table
# ----------------------------------------------------------------------------------------------------------------------


def mae_2d_sincos(dim: int, grid_h: int, grid_w: int, cls: bool) -> torch.Tensor:
    """MAE's `get_2d_sincos_pos_embed` for an H x W grid: rows h * W + w, first half of channels from w."""

    def one_axis(width, positions):
        omega = 1.0 / 10000 ** (np.arange(width // 2, dtype=np.float64) / (width / 2.0))
        angles = np.outer(positions.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    w, h = np.meshgrid(np.arange(grid_w, dtype=np.float32), np.arange(grid_h, dtype=np.float32))
    table = np.concatenate([one_axis(dim // 2, w), one_axis(dim // 2, h)], axis=1)
    if cls:
        table = np.concatenate([np.zeros((1, dim)), table])
    return torch.from_numpy(table).float()[None]


def interleaved_1d_sinusoid(num_positions: int, dim: int, cls: bool) -> torch.Tensor:
    """MSM-MAE's `get_sinusoid_encoding_table`: pos / 10000^(2 (j // 2) / d), sin on even j, cos on odd j."""
    angles = np.arange(num_positions)[:, None] / np.power(10000, 2 * (np.arange(dim)[None] // 2) / dim)
    table = angles.copy()
    table[:, 0::2], table[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    if cls:
        table = np.concatenate([np.zeros((1, dim)), table])
    return torch.from_numpy(table).float()[None]


# ----------------------------------------------------------------------------------------------------------------------
# Fixture checkpoints: official key names and containers, random values
# ----------------------------------------------------------------------------------------------------------------------


def _normal(generator, *shape, scale=1.0):
    return torch.randn(*shape, generator=generator) * scale


def _vit_block(prefix: str, dim: int, generator, k_bias_zero: bool) -> dict:
    block = {
        f"{prefix}.norm1.weight": 1 + _normal(generator, dim, scale=0.1),
        f"{prefix}.norm1.bias": _normal(generator, dim, scale=0.1),
        f"{prefix}.attn.qkv.weight": _normal(generator, 3 * dim, dim, scale=dim**-0.5),
        f"{prefix}.attn.proj.weight": _normal(generator, dim, dim, scale=dim**-0.5),
        f"{prefix}.attn.proj.bias": _normal(generator, dim, scale=0.1),
        f"{prefix}.norm2.weight": 1 + _normal(generator, dim, scale=0.1),
        f"{prefix}.norm2.bias": _normal(generator, dim, scale=0.1),
        f"{prefix}.mlp.fc1.weight": _normal(generator, 4 * dim, dim, scale=dim**-0.5),
        f"{prefix}.mlp.fc1.bias": _normal(generator, 4 * dim, scale=0.1),
        f"{prefix}.mlp.fc2.weight": _normal(generator, dim, 4 * dim, scale=(4 * dim) ** -0.5),
        f"{prefix}.mlp.fc2.bias": _normal(generator, dim, scale=0.1),
    }
    if k_bias_zero:  # BEiT-style: bias-free qkv plus separate q and v biases
        block[f"{prefix}.attn.q_bias"] = _normal(generator, dim, scale=0.1)
        block[f"{prefix}.attn.v_bias"] = _normal(generator, dim, scale=0.1)
    else:
        block[f"{prefix}.attn.qkv.bias"] = _normal(generator, 3 * dim, scale=0.1)
    return block


def _swin_block(prefix: str, dim: int, generator) -> dict:
    """AudioMAE's decoder block (timm_patch SwinTransformerBlock with WindowMultiHeadAttention)."""
    block = _vit_block(prefix, dim, generator, k_bias_zero=False)
    block |= {
        f"{prefix}.attn.meta_mlp.fc1.weight": _normal(generator, 384, 2),
        f"{prefix}.attn.meta_mlp.fc1.bias": _normal(generator, 384),
        f"{prefix}.attn.meta_mlp.fc2.weight": _normal(generator, DECODER_HEADS, 384),
        f"{prefix}.attn.meta_mlp.fc2.bias": _normal(generator, DECODER_HEADS),
        f"{prefix}.attn.tau": torch.ones(DECODER_HEADS),
    }
    return block


def _image_grid(fx: Fixture) -> tuple[int, int]:
    """(H, W) of the official patch grid."""
    if fx.layout == "freq_time":
        return fx.freq_patches, fx.time_patches
    return fx.time_patches, fx.freq_patches


def _decoder(fx: Fixture, generator) -> dict:
    c, n = int(fx.cls), fx.freq_patches * fx.time_patches
    weights = {
        "decoder_embed.weight": _normal(generator, DECODER_WIDTH, WIDTH, scale=WIDTH**-0.5),
        "decoder_embed.bias": _normal(generator, DECODER_WIDTH, scale=0.1),
        "mask_token": _normal(generator, 1, 1, DECODER_WIDTH, scale=0.02),
        "decoder_norm.weight": 1 + _normal(generator, DECODER_WIDTH, scale=0.1),
        "decoder_norm.bias": _normal(generator, DECODER_WIDTH, scale=0.1),
        "decoder_pred.weight": _normal(generator, PATCH * PATCH, DECODER_WIDTH, scale=DECODER_WIDTH**-0.5),
        "decoder_pred.bias": _normal(generator, PATCH * PATCH, scale=0.1),
    }
    if fx.decoder_1d_positions:
        weights["decoder_pos_embed"] = interleaved_1d_sinusoid(n, DECODER_WIDTH, fx.cls)
    else:
        weights["decoder_pos_embed"] = mae_2d_sincos(DECODER_WIDTH, *_image_grid(fx), fx.cls)
    assert weights["decoder_pos_embed"].shape == (1, c + n, DECODER_WIDTH)
    for index in range(DECODER_LAYERS):
        prefix = f"decoder_blocks.{index}"
        if fx.decoder == "swin":
            weights |= _swin_block(prefix, DECODER_WIDTH, generator)
        else:
            weights |= _vit_block(prefix, DECODER_WIDTH, generator, fx.k_bias_zero)
    return weights


def official_state_dict(fx: Fixture, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    n = fx.freq_patches * fx.time_patches
    state = {
        "patch_embed.proj.weight": _normal(generator, WIDTH, 1, PATCH, PATCH, scale=1 / PATCH),
        "patch_embed.proj.bias": _normal(generator, WIDTH, scale=0.1),
    }
    if fx.cls:
        state["cls_token"] = _normal(generator, 1, 1, WIDTH, scale=0.5)
    if fx.head:  # fine-tuned timm table: learned, nothing like a sinusoid
        state["pos_embed"] = _normal(generator, 1, int(fx.cls) + n, WIDTH, scale=0.5)
    else:  # pre-training: MAE's fixed 2-D sin-cos over the official image grid
        state["pos_embed"] = mae_2d_sincos(WIDTH, *_image_grid(fx), fx.cls)
    for index in range(LAYERS):
        state |= _vit_block(f"blocks.{index}", WIDTH, generator, fx.k_bias_zero)
    if fx.final_norm:
        state["norm.weight"], state["norm.bias"] = 1 + _normal(generator, WIDTH, scale=0.1), _normal(generator, WIDTH)
    if fx.fc_norm:
        state["fc_norm.weight"] = 1 + _normal(generator, WIDTH, scale=0.1)
        state["fc_norm.bias"] = _normal(generator, WIDTH, scale=0.1)
    if fx.head:
        state["head.weight"] = _normal(generator, 527, WIDTH, scale=WIDTH**-0.5)
        state["head.bias"] = _normal(generator, 527, scale=0.1)
    if fx.decoder:
        state |= _decoder(fx, generator)
    return state


def _training_args(fx: Fixture) -> argparse.Namespace:
    """The `args` MAE's save_model stores (a few of the real fields, with the official values)."""
    common = {"batch_size": 64, "epochs": 100, "lr": 0.0005, "distributed": True, "rank": 0, "dist_url": "env://"}
    if fx.source == "maskspec":
        model = "vit_base_patch16" if fx.head else "mae_vit_base_patch16_dec512d8b"
        extra = {"norm_file": "./audioset/mean_std_128.npy", "global_pool": True, "nb_classes": 527, "input_size": 224}
        extra |= {"norm_pix_loss": True, "mask_ratio": 0.75} if not fx.head else {}
        return argparse.Namespace(model=model, output_dir="./audioset/output", **common, **extra)
    if fx.source == "msm-mae":
        extra = {"input_size": [fx.mel, fx.frames], "patch_size": [PATCH, PATCH], "norm_stats": [-7.5, 4.5]}
        extra |= {"no_cls_token": not fx.cls, "dec_pos_2d": False, "norm_pix_loss": False, "mask_ratio": 0.75}
        return argparse.Namespace(
            model="mae_vit_base_patch16x16", output_dir=fx.file_name.split("/")[0], **common, **extra
        )
    # AudioMAE ran under submitit, whose launcher stores the output folder as a pathlib.Path.
    extra = {"dataset": "audioset", "roll_mag_aug": True, "decoder_mode": 1, "norm_pix_loss": True, "mask_ratio": 0.8}
    model = "vit_base_patch16" if fx.head else "mae_vit_base_patch16"
    return argparse.Namespace(model=model, output_dir=pathlib.PosixPath("/checkpoint/x/419909"), **common, **extra)


def official_container(fx: Fixture, state: dict) -> dict:
    """`{'model', 'optimizer', 'epoch', 'scaler', 'args'}` as MAE's util/misc.py save_model writes it."""
    return {
        "model": state,
        "optimizer": {
            "state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.95), "weight_decay": 0.05, "lr_scale": 1.0, "params": [0]}],
        },
        "epoch": 99,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000},
        "args": _training_args(fx),
    }


def save_official(fx: Fixture, folder: pathlib.Path, seed: int = 0) -> tuple[pathlib.Path, dict]:
    state = official_state_dict(fx, seed)
    path = folder / fx.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(official_container(fx, state), path)
    return path, state


def save_frame_statistics(folder: pathlib.Path, num_bins: int = 128, seed: int = 0) -> tuple[pathlib.Path, dict]:
    """A file in the format of MaskSpec's audioset/mean_std_128.npy (`np.save` of a dict: a pickled object array),
    with random statistics."""
    rng = np.random.default_rng(seed)
    statistics = {
        "all_mean": np.float64(rng.normal()),
        "all_std": np.float64(rng.uniform(0.5, 1.0)),
        "frame_mean": rng.normal(size=num_bins).astype(np.float32),
        "frame_std": rng.uniform(0.5, 1.0, size=num_bins).astype(np.float32),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mean_std_128.npy"
    np.save(path, statistics, allow_pickle=True)
    return path, statistics


# ----------------------------------------------------------------------------------------------------------------------
# The independent reference: timm / MAE ViT on the official image
# ----------------------------------------------------------------------------------------------------------------------


def _layer_norm(x, state, name, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps)


def _reference_block(x, state, prefix, heads, k_bias_zero):
    batch, tokens, dim = x.shape
    h = _layer_norm(x, state, f"{prefix}.norm1")
    if k_bias_zero:
        q_bias = state[f"{prefix}.attn.q_bias"]
        bias = torch.cat([q_bias, torch.zeros_like(q_bias), state[f"{prefix}.attn.v_bias"]])
    else:
        bias = state[f"{prefix}.attn.qkv.bias"]
    qkv = F.linear(h, state[f"{prefix}.attn.qkv.weight"], bias).reshape(batch, tokens, 3, heads, dim // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attention = ((q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
    h = (attention @ v).transpose(1, 2).reshape(batch, tokens, dim)
    x = x + F.linear(h, state[f"{prefix}.attn.proj.weight"], state[f"{prefix}.attn.proj.bias"])
    h = F.linear(
        _layer_norm(x, state, f"{prefix}.norm2"), state[f"{prefix}.mlp.fc1.weight"], state[f"{prefix}.mlp.fc1.bias"]
    )
    return x + F.linear(F.gelu(h), state[f"{prefix}.mlp.fc2.weight"], state[f"{prefix}.mlp.fc2.bias"])


def official_image(fx: Fixture, input_values: torch.Tensor) -> torch.Tensor:
    """Our `[batch, frames, mel]` as the official one-channel image."""
    return (input_values.transpose(1, 2) if fx.layout == "freq_time" else input_values)[:, None]


def reference_encoder(fx, state, image, noise=None, mask_ratio=0.75):
    """MAE's forward_encoder / timm's forward_features up to the blocks' (normed) output, all tokens."""
    x = F.conv2d(image, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2) + state["pos_embed"][:, int(fx.cls) :]
    ids_restore = None
    if noise is not None:
        ids_shuffle = noise.argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        keep = int(x.shape[1] * (1 - mask_ratio))
        x = x.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, x.shape[-1]))
    if fx.cls:
        x = torch.cat([(state["cls_token"] + state["pos_embed"][:, :1]).expand(len(x), -1, -1), x], dim=1)
    for index in range(LAYERS):
        x = _reference_block(x, state, f"blocks.{index}", HEADS, fx.k_bias_zero)
    if fx.final_norm:
        x = _layer_norm(x, state, "norm")
    return x, ids_restore


def reference_classifier(fx, state, image):
    """timm with `global_pool=True`: mean of the raw patch tokens (class token left out), fc_norm, head."""
    tokens, _ = reference_encoder(fx, state, image)
    pooled = _layer_norm(tokens[:, int(fx.cls) :].mean(dim=1), state, "fc_norm")
    return F.linear(pooled, state["head.weight"], state["head.bias"])


def reference_decoder(fx, state, latent, ids_restore):
    """MAE's forward_decoder: predictions `[batch, n, p*p]` in the official patch and pixel order."""
    c = int(fx.cls)
    x = F.linear(latent, state["decoder_embed.weight"], state["decoder_embed.bias"])
    num_masked = ids_restore.shape[1] - (x.shape[1] - c)
    patches = torch.cat([x[:, c:], state["mask_token"].expand(len(x), num_masked, -1)], dim=1)
    patches = patches.gather(1, ids_restore[:, :, None].expand(-1, -1, x.shape[-1]))
    x = torch.cat([x[:, :c], patches], dim=1) + state["decoder_pos_embed"]
    for index in range(DECODER_LAYERS):
        x = _reference_block(x, state, f"decoder_blocks.{index}", DECODER_HEADS, fx.k_bias_zero)
    x = _layer_norm(x, state, "decoder_norm")
    return F.linear(x, state["decoder_pred.weight"], state["decoder_pred.bias"])[:, c:]


def to_our_patch_order(fx: Fixture, rows: torch.Tensor) -> torch.Tensor:
    """`[batch, n, ...]` in the official image's row-major patch order -> time-major (t * F + f)."""
    if fx.layout == "time_freq":
        return rows
    grid = rows.reshape(rows.shape[0], fx.freq_patches, fx.time_patches, *rows.shape[2:])
    return grid.transpose(1, 2).reshape(rows.shape)


def to_our_pixel_order(fx: Fixture, patches: torch.Tensor) -> torch.Tensor:
    """MAE patchify's pixel order within a patch (image row slow) -> frames-first (dt * p + df)."""
    if fx.layout == "time_freq":
        return patches
    return patches.reshape(*patches.shape[:-1], PATCH, PATCH).transpose(-1, -2).reshape(patches.shape)


@pytest.mark.parametrize("grid", [(8, 62), (5, 13), (2, 3)])
def test_maes_sincos_on_a_freq_by_time_grid_is_ours_with_a_zero_class_row(grid):
    """MAE's `get_2d_sincos_pos_embed` (first half of the channels from the column index, i.e. time) is MaskSpec-HF's
    sinusoid once its rows are put in time-major order; its class row is zeros."""
    num_freq, num_time = grid
    table = mae_2d_sincos(64, num_freq, num_time, cls=True)[0]
    assert torch.equal(table[0], torch.zeros(64))
    time_major = table[1:].reshape(num_freq, num_time, 64).transpose(0, 1).reshape(-1, 64)
    torch.testing.assert_close(time_major, sinusoidal_position_embedding((num_time, num_freq), 64), rtol=0, atol=1e-6)


def test_audiomaes_time_by_freq_sincos_is_not_ours():
    """On AudioMAE's time x frequency image the halves are (frequency, time): a different table (so it is kept as a
    learned one)."""
    table = mae_2d_sincos(64, 64, 8, cls=True)[0, 1:]
    assert (table - sinusoidal_position_embedding((64, 8), 64)).abs().max() > 0.5
