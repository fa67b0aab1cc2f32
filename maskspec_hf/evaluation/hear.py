# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""The HEAR 2021 API (Turian et al., "HEAR: Holistic Evaluation of Audio Representations") for MaskSpec encoders.

    from maskspec_hf.evaluation import hear
    model = hear.load_model("path/or/hub-id")                 # any MaskSpec checkpoint; "tiny" etc.: random init
    scene = hear.get_scene_embeddings(audio, model)            # audio: [n_sounds, n_samples] at model.sample_rate
    frames, timestamps = hear.get_timestamp_embeddings(audio, model)

Choices (MSM-MAE's, Niizumi et al., HEAR 2021):

- `model.sample_rate` is 48000 Hz, a rate the HEAR validator accepts that holds the model's whole 0-15 kHz mel range
  (16 kHz would leave the top half of the mel bins empty). Audio is resampled to the feature extractor's 32 kHz with
  soxr inside `get_*_embeddings`.
- Timestamp embeddings: one per time step of one patch (16 frames x 10 ms = 160 ms); the encoder outputs of that
  step's 8 frequency patches are **concatenated** (in frequency order), so `timestamp_embedding_size` =
  hidden_size x 8 (1536 for Tiny, 3072 for Small, 6144 for Base). Timestamps are the centres of those steps in
  milliseconds (75, 235, 395, ... for a 10-ms hop: frame j is centred at j x 10 ms), regularly spaced. The HEAR
  validator suggests at most 50 ms and only warns above it.
- Long audio: the encoder sees non-overlapping chunks of `config.max_frames` rounded down to whole patches (992
  frames = 9.92 s by default), so attention cost stays linear in the audio length; each chunk's patches attend only
  within it. Trailing frames that do not fill a patch are dropped, as the encoder does; clips shorter than one patch
  (0.16 s) are zero-padded to it.
- Scene embeddings: the mean of the timestamp embeddings over time (`scene_embedding_size` = timestamp size).
- `load_model("")` raises: this package ships no pre-trained weights, and silently handing out a random encoder would
  make evaluations meaningless. Pass a checkpoint, or a preset name ("tiny", "small", "base") to get a randomly
  initialized baseline on purpose.

Validate with the HEAR validator: `hear-validator maskspec_hf.evaluation.hear -m <checkpoint> -d cpu`.
"""

import numpy as np
import torch
from torch import nn

from ..audio import resample_audio
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from ..loading import load_encoder
from ..modeling_maskspec import MaskSpecModel
from .embeddings import encode_windows


SAMPLE_RATE = 48000


class MaskSpecHEARModel(nn.Module):
    """A MaskSpec encoder with its feature extractor and the attributes the HEAR API requires."""

    def __init__(
        self,
        encoder: MaskSpecModel,
        feature_extractor: MaskSpecFeatureExtractor,
        sample_rate: int = SAMPLE_RATE,
        batch_size: int = 16,
    ):
        super().__init__()
        config = encoder.config
        self.encoder = encoder.eval()
        self.feature_extractor = feature_extractor
        self.sample_rate = int(sample_rate)
        self.batch_size = int(batch_size)
        self.patch_size = config.patch_size
        self.num_freq_patches = config.num_freq_patches
        self.chunk_frames = max(config.patch_size, config.max_frames // config.patch_size * config.patch_size)
        self.timestamp_embedding_size = int(config.hidden_size * config.num_freq_patches)
        self.scene_embedding_size = self.timestamp_embedding_size

    @property
    def step_ms(self) -> float:
        """Spacing of the timestamp embeddings in milliseconds (one patch of frames)."""
        return 1000.0 * self.patch_size * self.feature_extractor.hop_length / self.feature_extractor.sampling_rate


def load_model(model_file_path: str = "", sample_rate: int = SAMPLE_RATE, **kwargs) -> MaskSpecHEARModel:
    """Load a MaskSpec encoder for the HEAR API from a folder or Hub id (pre-training, classification or encoder
    checkpoint: decoder and head are dropped) or a preset name ("tiny"/"small"/"base": random weights). `kwargs` go
    to `maskspec_hf.loading.load_encoder` (e.g. `cache_dir`, `model_revision`, `token`)."""
    if not model_file_path:
        raise ValueError(
            "maskspec_hf.evaluation.hear.load_model needs a MaskSpec checkpoint: a folder saved with save_pretrained or a Hub id "
            "(hear-validator maskspec_hf.evaluation.hear -m <path>). Pass 'tiny', 'small' or 'base' for a randomly initialized "
            "encoder of that size."
        )
    encoder, feature_extractor = load_encoder(str(model_file_path), **kwargs)
    return MaskSpecHEARModel(encoder, feature_extractor, sample_rate=sample_rate)


def _check_audio(audio, model) -> torch.Tensor:
    if not isinstance(model, MaskSpecHEARModel):
        raise ValueError(f"model must come from maskspec_hf.evaluation.hear.load_model, got {type(model).__name__}.")
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        shape = tuple(audio.shape) if hasattr(audio, "shape") else type(audio).__name__
        raise ValueError(f"audio must be a torch.Tensor of shape [n_sounds, n_samples], got {shape}.")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"audio is empty (shape {tuple(audio.shape)}).")
    return audio


def _features(audio: torch.Tensor, model: MaskSpecHEARModel) -> torch.Tensor:
    """[n_sounds, n_samples] at `model.sample_rate` -> normalized log-mels [n_sounds, frames, mel] (CPU)."""
    extractor = model.feature_extractor
    waves = audio.detach().to("cpu", torch.float32).numpy()
    waves = [resample_audio(np.ascontiguousarray(w), model.sample_rate, extractor.sampling_rate) for w in waves]
    minimum = extractor.min_num_samples
    waves = [np.pad(w, (0, minimum - len(w))) if len(w) < minimum else w for w in waves]
    # padding="longest" (the sounds have one length): never the fixed-length cut of a `pad_or_truncate` front end
    # (AudioMAE's 1024 frames), so the timestamps cover the whole sound.
    return extractor(waves, sampling_rate=extractor.sampling_rate, padding="longest", return_tensors="pt")[
        "input_values"
    ]


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: MaskSpecHEARModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings `[n_sounds, n_timestamps, timestamp_embedding_size]` (float32) and their centre times in ms
    `[n_sounds, n_timestamps]`, one per 160-ms step (see the module docstring)."""
    audio = _check_audio(audio, model)
    features = _features(audio, model)
    p = model.patch_size
    usable = features.shape[1] // p * p  # trailing frames that do not fill a patch are dropped, as the encoder does

    def steps(output) -> torch.Tensor:  # [windows, patches, hidden] -> [windows, time steps, freq patches * hidden]
        hidden = output.last_hidden_state  # time-major: a step's frequency patches are consecutive
        return hidden.reshape(hidden.shape[0], -1, model.num_freq_patches * hidden.shape[-1])

    # Consecutive chunks, the last one holding what is left: each step is embedded exactly once.
    windows = encode_windows(
        model.encoder,
        features[:, :usable],
        None,
        steps,
        model.chunk_frames,
        flush_last=False,
        batch_size=model.batch_size,
    )
    embeddings = torch.stack([torch.cat([v[: n // p] for _, n, v in sound]) for sound in windows])
    centres = torch.arange(embeddings.shape[1], dtype=torch.float32) * p + (p - 1) / 2
    timestamps = centres * (1000.0 * model.feature_extractor.hop_length / model.feature_extractor.sampling_rate)
    num_sounds = embeddings.shape[0]
    return embeddings.to(audio.device), timestamps.expand(num_sounds, -1).contiguous().to(audio.device)


@torch.no_grad()
def get_scene_embeddings(audio: torch.Tensor, model: MaskSpecHEARModel) -> torch.Tensor:
    """One embedding per sound, `[n_sounds, scene_embedding_size]` (float32): the mean of its timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)


__all__ = [
    "SAMPLE_RATE",
    "MaskSpecHEARModel",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
]
