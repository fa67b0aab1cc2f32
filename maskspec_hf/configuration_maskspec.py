# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""MaskSpec model configuration."""

import os
import shutil
from pathlib import Path

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.utils import auto_docstring


# Encoder shapes of the three sizes in the MaskSpec paper (PaSST's ViT shapes, 12 blocks each).
# Base's FFN width is 3072 as in the official code; the paper's text says 2048.
MASKSPEC_PRESETS = {
    "tiny": {"hidden_size": 192, "num_attention_heads": 3, "intermediate_size": 768},
    "small": {"hidden_size": 384, "num_attention_heads": 6, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
}

# What a saved folder's `auto_map` points each Auto class to, with the code file each entry needs. Every folder maps
# all of them, whichever class saved it: a pre-training run's `final/` must also load as an encoder or a classifier.
REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_maskspec.MaskSpecConfig",
    "AutoModel": "modeling_maskspec.MaskSpecModel",
    "AutoModelForPreTraining": "modeling_maskspec.MaskSpecForPreTraining",
    "AutoModelForAudioClassification": "modeling_maskspec.MaskSpecForAudioClassification",
    "AutoFeatureExtractor": "feature_extraction_maskspec.MaskSpecFeatureExtractor",
}

DECODER_TYPES = ("self_attention", "cross_attention")
MASK_STRATEGIES = ("random", "inverse_block", "time", "frequency")
POOLING_TYPES = ("mean", "cls")
POSITION_EMBEDDING_TYPES = ("sinusoidal", "learned")


@auto_docstring(checkpoint="maskspec-hf/maskspec-small")
@strict(accept_kwargs=True)
class MaskSpecConfig(PreTrainedConfig):
    r"""
    num_mel_bins (`int`, *optional*, defaults to 128):
        Number of mel bins of the input spectrogram (its frequency axis).
    max_frames (`int`, *optional*, defaults to 1000):
        Number of spectrogram frames in one model window: 1000 frames = 10 s at the 10 ms hop of the default
        feature extractor. With sinusoidal positions the model itself accepts any number of frames; this is the
        window used for training crops and for splitting longer audio at inference. With learned positions it is
        also the grid of the position table (`max_frames // patch_size` time patches).
    patch_size (`int`, *optional*, defaults to 16):
        Side of the square, non-overlapping patches (frames x mel bins) the spectrogram is cut into. Trailing
        frames or mel bins that do not fill a whole patch are cropped.
    decoder_hidden_size (`int`, *optional*, defaults to 512):
        Width of the pre-training decoder (the same for every encoder size).
    decoder_num_hidden_layers (`int`, *optional*, defaults to 8):
        Number of transformer blocks in the pre-training decoder.
    decoder_num_attention_heads (`int`, *optional*, defaults to 16):
        Number of attention heads in the pre-training decoder.
    decoder_intermediate_size (`int`, *optional*, defaults to 2048):
        Feed-forward width of the pre-training decoder.
    decoder_type (`str`, *optional*, defaults to `"self_attention"`):
        The pre-training decoder. `"self_attention"` is the paper's (MAE's): the decoder-projected visible tokens
        and a shared mask token at every reconstructed position, plus sinusoidal positions, go through
        `decoder_num_hidden_layers` pre-norm ViT blocks. `"cross_attention"` is CrossMAE's (Fu et al. 2024): the
        queries are the mask token plus the position of each reconstructed patch, and each block does
        cross-attention from the queries to the decoder-projected visible tokens (plus their positions), then the
        MLP; there is no self-attention over all patches, so its cost grows with the number of reconstructed
        patches times the number of visible ones. Its blocks have their own weights (`decoder.layers.*.cross_*`),
        so a checkpoint of one type does not fill the other's decoder blocks. Both use the `decoder_*` sizes.
    decoder_reconstruct_ratio (`float`, *optional*, defaults to 1.0):
        Fraction of the masked patches reconstructed (and scored) per training step, in (0, 1]: each sample
        reconstructs `max(1, floor(num_masked * ratio))` of its masked patches, chosen at random (the masked
        patches with the smallest masking `noise`, so a given `noise` or seed gives the same subset). The decoder
        then runs over the visible tokens plus that subset only, and the loss is the MSE over exactly those patches.
        1.0 reconstructs all masked patches (the paper). In eval mode every masked patch is reconstructed, whatever
        the ratio (so reconstruction figures are complete).
    mask_ratio (`float`, *optional*, defaults to 0.75):
        Fraction of patches masked (removed from the encoder input) during pre-training; must lie in [0.05, 0.95].
        Exactly `floor(num_patches * mask_ratio)` patches per sample are masked, whatever `mask_strategy`.
    mask_strategy (`str`, *optional*, defaults to `"random"`):
        Which patches pre-training masks. `"random"`: uniformly at random (the paper's). `"inverse_block"`
        (data2vec 2.0 / EAT): visible blocks of `mask_block_size` x `mask_block_size` patches (time x frequency,
        clipped at the edges, possibly overlapping) are placed around random centers until
        `num_patches - num_masked` patches are visible; everything else is masked. `"time"`: whole time columns
        (all frequency patches of one time step) are masked. `"frequency"`: whole frequency rows (one frequency band
        over all time steps). Where whole blocks, columns or rows overshoot the exact count, the last one is only
        partly visible (or masked), its patches chosen at random. Every strategy is driven by the same `noise`
        (or the global seed), so a given `noise` gives the same mask. Padding patches are treated as in `"random"`:
        they may be masked or visible, and they are left out of attention and of the loss. The classifier's
        `patchout_ratio` always drops patches uniformly at random.
    mask_block_size (`int`, *optional*, defaults to 5):
        Side, in patches, of the square visible blocks of `mask_strategy="inverse_block"` (EAT uses 5); unused by
        the other strategies.
    norm_pix_loss (`bool`, *optional*, defaults to `False`):
        Normalize every target patch by its own mean and standard deviation before the reconstruction loss. The
        official MaskSpec scripts do (set `True` to reproduce them); MSM-MAE does not, and neither do we by default:
        in matched short pre-training runs on real audio (`benchmarks/ssl_gain.py`) raw log-mel targets gave a
        better encoder on both tasks (linear probe +3 to +8 accuracy points), since predicting each masked patch's
        level and spectral envelope makes the encoder keep them.
    qkv_bias (`bool`, *optional*, defaults to `True`):
        Whether the query, key and value projections have a bias.
    use_cls_token (`bool`, *optional*, defaults to `False`):
        Prepend a learned class token (`maskspec.cls_token`) to the encoder's sequence, as ViT / MAE do. It is
        added after masking (never masked), attends like any token, and carries position zero (the zero row of
        MAE's sinusoids) or row 0 of a learned table. `last_hidden_state` keeps the patch tokens only; the class
        token's output is `cls_hidden_state`. The pre-training decoder carries it too (MAE: projected with the
        visible tokens, dropped before the prediction); the reconstruction loss is over patches only.
    pooling (`str`, *optional*, defaults to `"mean"`):
        What the encoder's `pooler_output` is: `"mean"`, the mean of `last_hidden_state` over the real patches
        (the class token left out); `"cls"`, the class token's output (needs `use_cls_token`).
    use_final_layernorm (`bool`, *optional*, defaults to `True`):
        Whether the encoder ends with a LayerNorm (`maskspec.layernorm`). MAE-style fine-tuning with global
        pooling has none: the mean is over the raw block outputs, then `fc_norm`.
    use_fc_norm (`bool`, *optional*, defaults to `True`):
        Whether the classifier normalizes the pooled embedding with a LayerNorm (`fc_norm`) before its head. MAE's
        class-token pooling has none (its final LayerNorm comes before the class token is taken).
    position_embedding_type (`str`, *optional*, defaults to `"sinusoidal"`):
        The encoder's positions. `"sinusoidal"`: fixed 2-D sinusoids (half of the channels for time, half for
        frequency; MAE's layout), any number of frames. `"learned"`: a trained table
        `maskspec.position_embeddings` of shape `[1, n, hidden_size]` for the grid of `max_frames // patch_size`
        time x `num_mel_bins // patch_size` frequency patches, in patch order (time-major), with a first row for
        the class token when there is one; initialized with the sinusoids. Inputs with fewer time patches use the
        table's first time columns; more than `max_frames` frames are an error (the classifier splits longer
        inputs into `max_frames` windows anyway).
    decoder_position_embedding_type (`str`, *optional*, defaults to `"sinusoidal"`):
        The same choice for the pre-training decoder (`decoder.position_embeddings`, `decoder_hidden_size` wide).
    classifier_dropout (`float`, *optional*, defaults to 0.0):
        Dropout on the pooled embedding before the classification head.
    patchout_ratio (`float`, *optional*, defaults to 0.0):
        Fraction of patches dropped at random from the encoder input while fine-tuning a classifier (PaSST's
        patchout, a regularizer): 0 disables it, otherwise in [0.05, 0.95]. Never applied in eval mode.
    inference_window_overlap (`float`, *optional*, defaults to 0.5):
        Overlap between consecutive `max_frames` windows when the classifier gets a longer input; the logits of
        the windows are averaged.
    inference_window_batch_size (`int`, *optional*, defaults to 16):
        Number of those windows the classifier runs through the encoder at a time, so memory stays flat in the
        input length (a 30-minute clip is some 360 windows); it does not change the logits.

    Sizes from the paper are available by name: `MaskSpecConfig.from_preset("tiny" | "small" | "base")`. All use 12
    encoder blocks; Tiny has width 192, 3 heads and FFN 768; Small 384, 6 heads, FFN 1536; Base 768, 12 heads and FFN
    3072 (the official code's value; the paper's text says 2048).

    Example:

    ```python
    >>> from maskspec_hf import MaskSpecConfig, MaskSpecForPreTraining

    >>> configuration = MaskSpecConfig.from_preset("small")
    >>> model = MaskSpecForPreTraining(configuration)
    ```"""

    model_type = "maskspec"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    num_mel_bins: int = 128
    max_frames: int = 1000
    patch_size: int = 16
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    decoder_type: str = "self_attention"
    decoder_reconstruct_ratio: float | int = 1.0
    mask_ratio: float = 0.75
    mask_strategy: str = "random"
    mask_block_size: int = 5
    norm_pix_loss: bool = False
    use_cls_token: bool = False
    pooling: str = "mean"
    use_final_layernorm: bool = True
    use_fc_norm: bool = True
    position_embedding_type: str = "sinusoidal"
    decoder_position_embedding_type: str = "sinusoidal"
    classifier_dropout: float | int = 0.0
    patchout_ratio: float | int = 0.0
    inference_window_overlap: float | int = 0.5
    inference_window_batch_size: int = 16

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_values()

    def _check_values(self):
        positive = (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "num_mel_bins",
            "max_frames",
            "patch_size",
            "decoder_hidden_size",
            "decoder_num_hidden_layers",
            "decoder_num_attention_heads",
            "decoder_intermediate_size",
            "inference_window_batch_size",
            "mask_block_size",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if not 0.05 <= self.mask_ratio <= 0.95:
            raise ValueError(f"`mask_ratio` must lie in [0.05, 0.95], got {self.mask_ratio}.")
        if self.decoder_type not in DECODER_TYPES:
            raise ValueError(f"`decoder_type` must be one of {DECODER_TYPES}, got {self.decoder_type!r}.")
        if isinstance(self.decoder_reconstruct_ratio, bool) or not 0.0 < self.decoder_reconstruct_ratio <= 1.0:
            raise ValueError(
                f"`decoder_reconstruct_ratio` must lie in (0, 1], got {self.decoder_reconstruct_ratio!r}."
            )
        if self.mask_strategy not in MASK_STRATEGIES:
            raise ValueError(f"`mask_strategy` must be one of {MASK_STRATEGIES}, got {self.mask_strategy!r}.")
        self._check_token_options()
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "patchout_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1), got {getattr(self, name)}.")
        if not 0.0 <= self.inference_window_overlap < 1.0:
            raise ValueError(f"`inference_window_overlap` must lie in [0, 1), got {self.inference_window_overlap}.")
        for width, heads in (
            ("hidden_size", "num_attention_heads"),
            ("decoder_hidden_size", "decoder_num_attention_heads"),
        ):
            if getattr(self, width) % getattr(self, heads) != 0:
                raise ValueError(
                    f"`{width}` ({getattr(self, width)}) must be divisible by `{heads}` ({getattr(self, heads)})."
                )
        for name in ("hidden_size", "decoder_hidden_size"):
            if getattr(self, name) % 4 != 0:
                # Half the channels carry time, half frequency, each as sin/cos pairs.
                raise ValueError(
                    f"`{name}` must be divisible by 4 for the 2-D sinusoidal positions, got {getattr(self, name)}."
                )
        if self.patchout_ratio != 0 and not 0.05 <= self.patchout_ratio <= 0.95:
            raise ValueError(f"`patchout_ratio` must be 0 (off) or lie in [0.05, 0.95], got {self.patchout_ratio}.")
        if self.patch_size > self.num_mel_bins or self.patch_size > self.max_frames:
            raise ValueError(
                f"`patch_size` ({self.patch_size}) must not exceed the spectrogram: num_mel_bins={self.num_mel_bins}, "
                f"max_frames={self.max_frames}."
            )

    def _check_token_options(self):
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"`pooling` must be one of {POOLING_TYPES}, got {self.pooling!r}.")
        if self.pooling == "cls" and not self.use_cls_token:
            raise ValueError('`pooling="cls"` needs a class token: set `use_cls_token=True`.')
        for name in ("position_embedding_type", "decoder_position_embedding_type"):
            if getattr(self, name) not in POSITION_EMBEDDING_TYPES:
                raise ValueError(f"`{name}` must be one of {POSITION_EMBEDDING_TYPES}, got {getattr(self, name)!r}.")

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "MaskSpecConfig":
        """Config of one of the paper's sizes ("tiny", "small", "base"); keyword arguments override fields."""
        key = name.lower().removeprefix("maskspec-")
        if key not in MASKSPEC_PRESETS:
            raise ValueError(f"Unknown MaskSpec preset {name!r}; choose one of {sorted(MASKSPEC_PRESETS)}.")
        return cls(**{**MASKSPEC_PRESETS[key], **kwargs})

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        # With remote code on (`register_for_auto_class`, which `import maskspec_hf` does), write the full
        # `auto_map` and copy every code file it names; transformers alone would map and copy only the saving class.
        if self._auto_class is not None and not os.path.isfile(save_directory):
            self._add_remote_code(Path(save_directory))
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    def _add_remote_code(self, folder: Path) -> None:
        """Copies the code files next to this one into `folder` and maps the Auto classes whose file it holds."""
        here = Path(__file__).resolve().parent
        folder.mkdir(parents=True, exist_ok=True)
        auto_map = dict(getattr(self, "auto_map", None) or {})
        for auto_class, reference in REMOTE_CODE_AUTO_MAP.items():
            name = f"{reference.split('.')[0]}.py"
            if (here / name).is_file() and (folder / name).resolve() != here / name:  # not the package folder itself
                shutil.copyfile(here / name, folder / name)
            if (folder / name).is_file():
                auto_map[auto_class] = reference
            elif "--" not in auto_map.get(auto_class, "--"):
                # Loaded as remote code, each module sits alone in the cache and the file may be out of reach:
                # never leave an entry pointing at a file the folder lacks (an entry naming another repo is kept).
                del auto_map[auto_class]
        self.auto_map = auto_map

    @property
    def num_freq_patches(self) -> int:
        return self.num_mel_bins // self.patch_size

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size

    @property
    def num_time_patches(self) -> int:
        """Time patches of one `max_frames` window: the grid of learned position tables."""
        return self.max_frames // self.patch_size


__all__ = [
    "DECODER_TYPES",
    "MASKSPEC_PRESETS",
    "MASK_STRATEGIES",
    "POOLING_TYPES",
    "POSITION_EMBEDDING_TYPES",
    "MaskSpecConfig",
    "REMOTE_CODE_AUTO_MAP",
]
