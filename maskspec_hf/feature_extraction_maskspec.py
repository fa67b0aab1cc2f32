# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""MaskSpec feature extractor: PaSST's log-mel front end, computed batched in torch.

This file is also copied next to saved models and loaded as remote code, so it imports only numpy, torch and
transformers (soxr lazily, for resampling).
"""

import math
import os
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.audio_utils import mel_filter_bank
from transformers.utils import PaddingStrategy, TensorType, logging


logger = logging.get_logger(__name__)


# torch.finfo(torch.float32).eps: the log guard of MSM-MAE (`log(x + eps)`) and Kaldi's fbank (`log(max(x, eps))`).
FLOAT32_EPS = float(np.finfo(np.float32).eps)

# The front ends of the sources, as constructor arguments over the defaults (the defaults are PaSST's, which MaskSpec
# uses). See `MaskSpecFeatureExtractor.from_front_end`.
FRONT_ENDS = {
    "passt": {},
    "maskspec": {},
    # nttcslab/msm-mae runtime.py: nnAudio MelSpectrogram (periodic Hann, reflect-centred STFT, power 2, librosa's
    # Slaney mel scale and area norm), `log(x + eps)`. MSM-MAE computes its statistics at run time; -7.1 / 4.2 are
    # the AudioSet values its authors ship for this front end in nttcslab/m2d ("for 2022 models").
    "msm_mae": dict(
        sampling_rate=16000,
        feature_size=80,
        n_fft=400,
        win_length=400,
        hop_length=160,
        preemphasis=0.0,
        periodic_window=True,
        f_min=50.0,
        f_max=8000.0,
        mel_scale="slaney",
        mel_norm="slaney",
        log_offset=FLOAT32_EPS,
        mean=-7.1,
        std=4.2,
    ),
    # facebookresearch/AudioMAE dataset.py: torchaudio.compliance.kaldi.fbank (htk_compat, no energy, "hanning",
    # 128 bins, no dither, 10 ms shift, Kaldi defaults otherwise), cut/zero-padded to 1024 frames, then
    # (x - mean) / (2 * std) with the AudioSet statistics.
    "audiomae": dict(
        sampling_rate=16000,
        feature_size=128,
        n_fft=512,
        win_length=400,
        hop_length=160,
        center=False,
        remove_dc_offset=True,
        preemphasis=0.97,
        preemphasis_per_frame=True,
        f_min=20.0,
        f_max=8000.0,
        log_offset=FLOAT32_EPS,
        log_offset_mode="max",
        mean=-4.2677393,
        std=4.5689974,
        std_multiplier=2.0,
        max_length_frames=1024,
        pad_or_truncate=True,
    ),
}
# Front ends that pad the raw log-mel with zeros before normalizing: their `padding_value` follows mean and std.
_PADS_RAW_ZEROS = {"audiomae"}


class MaskSpecFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns mono waveforms into normalized log-mel spectrograms of shape `[batch, frames, feature_size]`. The defaults
    are the front end of PaSST that MaskSpec uses: pre-emphasis, a centered STFT with reflect padding and a symmetric
    Hann window, a Kaldi-scale mel filterbank, `log(mel + log_offset)` and `(x - mean) / std`. The front ends of
    MSM-MAE and AudioMAE (Kaldi fbank) are presets of the same fields: see [`~MaskSpecFeatureExtractor.from_front_end`].

    The maths runs batched in torch and is batch-invariant: a clip gives the same features alone or in a padded batch.

    Args:
        feature_size (`int`, *optional*, defaults to 128):
            Number of mel bins.
        sampling_rate (`int`, *optional*, defaults to 32000):
            Sampling rate (Hz) the audio must have.
        padding_value (`float`, *optional*, defaults to 0.0):
            Value of padded frames (0.0 is the mean of normalized features).
        n_fft (`int`, *optional*, defaults to 1024):
            FFT size.
        win_length (`int`, *optional*, defaults to 800):
            Window length in samples (25 ms at 32 kHz); the window is zero-padded to `n_fft` (centered when
            `center`, on the right otherwise, as Kaldi; the power spectrum is the same).
        hop_length (`int`, *optional*, defaults to 320):
            Hop between frames in samples (10 ms at 32 kHz).
        preemphasis (`float`, *optional*, defaults to 0.97):
            Pre-emphasis coefficient, `y[t] = x[t + 1] - preemphasis * x[t]`; 0 disables it.
        f_min (`float`, *optional*, defaults to 0.0):
            Lowest mel filter edge in Hz.
        f_max (`float`, *optional*, defaults to 15000.0):
            Highest mel filter edge in Hz; at most `sampling_rate / 2`.
        log_offset (`float`, *optional*, defaults to 1e-5):
            Guard of the log, so silence stays finite: see `log_offset_mode`.
        do_normalize (`bool`, *optional*, defaults to `True`):
            Whether to apply `(x - mean) / (std_multiplier * std)` to the log-mel values.
        mean (`float` or `list[float]`, *optional*, defaults to -4.5):
            Mean of the log-mel values (PaSST's fixed value), one for all bins or one per mel bin (`feature_size`
            values); `compute_normalization_stats` fits it to a dataset.
        std (`float` or `list[float]`, *optional*, defaults to 5.0):
            Standard deviation of the log-mel values (PaSST's fixed value), one for all bins or one per mel bin.
        max_length_frames (`int`, *optional*, defaults to 1000):
            Default `max_length` (in frames) for `padding="max_length"` and `truncation=True`; 1000 frames = 10 s.
        return_attention_mask (`bool`, *optional*, defaults to `True`):
            Whether `__call__` returns `attention_mask` (1 = real frame, 0 = padding) by default.
        std_multiplier (`float`, *optional*, defaults to 1.0):
            Features are `(x - mean) / (std_multiplier * std)`; AudioMAE (like AST) divides by twice the std.
        center (`bool`, *optional*, defaults to `True`):
            Reflect-pad each clip by `n_fft // 2` samples at both ends (`torch.stft(center=True)`), giving
            `1 + samples // hop_length` frames; `False` frames the clip from its first sample as Kaldi's `snip_edges`,
            giving `1 + (samples - win_length) // hop_length` frames.
        periodic_window (`bool`, *optional*, defaults to `False`):
            Periodic Hann window (`scipy.signal.get_window("hann", fftbins=True)`, nnAudio's) instead of the
            symmetric one (`np.hanning`, PaSST's and Kaldi's "hanning").
        remove_dc_offset (`bool`, *optional*, defaults to `False`):
            Subtract each frame's mean (over its `win_length` samples) before pre-emphasis, as Kaldi.
        preemphasis_per_frame (`bool`, *optional*, defaults to `False`):
            Apply pre-emphasis inside each frame, its first sample against itself (Kaldi), instead of once on the
            clip (PaSST, one sample shorter).
        mel_scale (`str`, *optional*, defaults to `"kaldi"`):
            `"kaldi"`: `1127 ln(1 + f / 700)` with triangles in mel space (torchaudio's Kaldi mel banks); `"slaney"`
            or `"htk"`: librosa's filters, triangles in Hz space.
        mel_norm (`str`, *optional*):
            `"slaney"` scales each filter to unit area (librosa's and nnAudio's default); `None` leaves peaks at 1.
        log_offset_mode (`str`, *optional*, defaults to `"add"`):
            `"add"`: `log(mel + log_offset)`; `"max"`: `log(max(mel, log_offset))`, Kaldi's floor.
        pad_or_truncate (`bool`, *optional*, defaults to `False`):
            When `__call__` gets no `padding`, pad (with `padding_value`) or truncate every clip to exactly
            `max_length_frames` frames and count the padded frames as input (`attention_mask` 1): AudioMAE's
            `target_length`, whose model attends to and pools over the zero-padded frames. An explicit `padding`
            pads as usual (mask 0), with `truncation` off unless asked.
    """

    model_input_names = ["input_values", "attention_mask"]
    # Shortest accepted clip in frames: one 16x16 patch of the model.
    min_frames = 16
    FRONT_ENDS = FRONT_ENDS

    def __init__(
        self,
        feature_size: int = 128,
        sampling_rate: int = 32000,
        padding_value: float = 0.0,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        preemphasis: float = 0.97,
        f_min: float = 0.0,
        f_max: float = 15000.0,
        log_offset: float = 1e-5,
        do_normalize: bool = True,
        mean: float | list[float] = -4.5,
        std: float | list[float] = 5.0,
        max_length_frames: int = 1000,
        return_attention_mask: bool = True,
        std_multiplier: float = 1.0,
        center: bool = True,
        periodic_window: bool = False,
        remove_dc_offset: bool = False,
        preemphasis_per_frame: bool = False,
        mel_scale: str = "kaldi",
        mel_norm: str | None = None,
        log_offset_mode: str = "add",
        pad_or_truncate: bool = False,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.preemphasis = preemphasis
        self.f_min = f_min
        self.f_max = f_max
        self.log_offset = log_offset
        self.do_normalize = do_normalize
        self.mean = _scalar_or_list(mean)
        self.std = _scalar_or_list(std)
        self.max_length_frames = max_length_frames
        self.std_multiplier = std_multiplier
        self.center = center
        self.periodic_window = periodic_window
        self.remove_dc_offset = remove_dc_offset
        self.preemphasis_per_frame = preemphasis_per_frame
        self.mel_scale = mel_scale
        self.mel_norm = mel_norm
        self.log_offset_mode = log_offset_mode
        self.pad_or_truncate = pad_or_truncate
        self._check_params()

        # Built once; not serialized (see `to_dict`).
        self.mel_filters = self._build_mel_filters()
        # torch.stft zero-pads a shorter window to n_fft, centered; Kaldi pads it on the right.
        left = self._window_start
        self.window = torch.nn.functional.pad(
            torch.hann_window(win_length, periodic=periodic_window), (left, n_fft - win_length - left)
        )

    def _build_mel_filters(self) -> torch.Tensor:
        """`[n_fft // 2 + 1, feature_size]` filterbank. A filter narrower than an FFT bin is empty (transformers
        warns); Kaldi's fbank keeps it too (AudioMAE's 128 bins have one), and its log-mel is the log floor."""
        filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=self.feature_size,
            min_frequency=self.f_min,
            max_frequency=self.f_max,
            sampling_rate=self.sampling_rate,
            norm=self.mel_norm,
            mel_scale=self.mel_scale,
            # Kaldi's triangles are linear in mel; librosa's (Slaney, HTK) in Hz.
            triangularize_in_mel_space=self.mel_scale == "kaldi",
        )
        return torch.from_numpy(filters).float()

    @classmethod
    def from_front_end(cls, name: str, **overrides) -> "MaskSpecFeatureExtractor":
        """
        The feature extractor of a source's front end: `"passt"` / `"maskspec"` (the defaults), `"msm_mae"` or
        `"audiomae"` (hyphens accepted), with `overrides` (e.g. `mean`, `std`) on top. The result holds plain fields
        only: `save_pretrained` writes them, with no preset name. See `FRONT_ENDS` for each one's values.
        """
        key = name.lower().replace("-", "_")
        if key not in FRONT_ENDS:
            raise ValueError(f"Unknown front end {name!r}: choose one of {sorted(FRONT_ENDS)}.")
        kwargs = {**FRONT_ENDS[key], **overrides}
        if key in _PADS_RAW_ZEROS and "padding_value" not in overrides:
            kwargs["padding_value"] = _normalized_zero(kwargs["mean"], kwargs["std"], kwargs["std_multiplier"])
        return cls(**kwargs)

    def _check_params(self):
        _check_sampling_rate(self.sampling_rate, "The feature extractor's `sampling_rate`")
        if self.feature_size < 1 or self.n_fft < 1 or self.hop_length < 1 or self.max_length_frames < 1:
            raise ValueError("feature_size, n_fft, hop_length and max_length_frames must be positive integers.")
        if not 1 <= self.win_length <= self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must lie in [1, n_fft] (n_fft={self.n_fft}).")
        nyquist = self.sampling_rate / 2
        if not 0 <= self.f_min < self.f_max <= nyquist:
            raise ValueError(
                f"Need 0 <= f_min < f_max <= sampling_rate / 2, got f_min={self.f_min}, f_max={self.f_max} at "
                f"sampling_rate={self.sampling_rate}: pass e.g. f_max={nyquist}."
            )
        if self.log_offset <= 0:
            raise ValueError(f"log_offset must be > 0 so that silence stays finite, got {self.log_offset}.")
        _check_choice("mel_scale", self.mel_scale, ("kaldi", "slaney", "htk"))
        _check_choice("mel_norm", self.mel_norm, (None, "slaney"))
        _check_choice("log_offset_mode", self.log_offset_mode, ("add", "max"))
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != self.feature_size:
                raise ValueError(
                    f"{name} has {len(value)} values but there are {self.feature_size} mel bins (feature_size): "
                    f"pass one {name} per mel bin, or a single number."
                )
            if not np.isfinite(value).all():
                raise ValueError(f"{name} must be finite, got {value}.")
        if np.min(self.std) <= 0 or self.std_multiplier <= 0:
            raise ValueError(f"std and std_multiplier must be > 0, got std={self.std}, {self.std_multiplier=}.")

    @property
    def num_mel_bins(self) -> int:
        """Number of mel bins (the same as `feature_size`)."""
        return self.feature_size

    @property
    def _window_start(self) -> int:
        """Where the `win_length` samples of a frame start within its `n_fft` samples."""
        return (self.n_fft - self.win_length) // 2 if self.center else 0

    @property
    def _signal_trim(self) -> int:
        """Samples the clip-wide pre-emphasis removes (one, when on)."""
        return 1 if self.preemphasis and not self.preemphasis_per_frame else 0

    @property
    def min_num_samples(self) -> int:
        """Fewest raw samples a clip needs: `min_frames` frames (and, when centered, more than `n_fft // 2` samples
        to reflect)."""
        if self.center:
            needed = max((self.min_frames - 1) * self.hop_length, self.n_fft // 2 + 1)
        else:
            needed = (self.min_frames - 1) * self.hop_length + self.win_length
        return needed + self._signal_trim

    def frames_for_samples(self, num_samples: int) -> int:
        """Number of frames produced for a clip of `num_samples` raw samples (at `sampling_rate`)."""
        length = int(num_samples) - self._signal_trim
        if self.center:
            return 1 + length // self.hop_length if length > 0 else 0
        # Kaldi's snip_edges: only whole windows.
        return 1 + (length - self.win_length) // self.hop_length if length >= self.win_length else 0

    def to_dict(self) -> dict:
        output = super().to_dict()
        # Derived tensors: rebuilt from the parameters in __init__.
        output.pop("mel_filters", None)
        output.pop("window", None)
        return output

    # ------------------------------------------------------------------ input checks

    def _check_rate(self, sampling_rate: int | None, resample: bool, warn_once: bool = False) -> int:
        """Returns the rate of the input, raising when it differs from ours and `resample` is off."""
        if sampling_rate is None:
            warn = logger.warning_once if warn_once else logger.warning
            warn(
                f"It is strongly recommended to pass the `sampling_rate` argument to `{type(self).__name__}()`; "
                f"assuming {self.sampling_rate} Hz. Failing to do so can result in silent errors."
            )
            return self.sampling_rate
        _check_sampling_rate(sampling_rate, "`sampling_rate` (the rate of the audio)")
        if sampling_rate != self.sampling_rate and not resample:
            raise ValueError(
                f"Wrong sampling rate: got {sampling_rate} Hz, expected {self.sampling_rate} Hz: resample first, e.g. "
                f"dataset.cast_column('audio', datasets.Audio(sampling_rate={self.sampling_rate})), or pass "
                "resample=True."
            )
        return sampling_rate

    def _to_waveform(self, audio, name: str) -> np.ndarray:
        """Validates one clip and returns it as a 1-D float32 array; `name` says which clip in messages.

        The contract: real float waveforms (numpy, torch or lists), mono, finite, values in [-1, 1]. Integer PCM is
        rejected, never scaled (its full scale is a guess), and before any resampling, so the same array gets the
        same error at every sampling rate. Paths and encoded bytes are rejected too: decode them first.
        """
        if isinstance(audio, (str, bytes, os.PathLike)):
            raise ValueError(_not_a_waveform_message(name, audio))
        if isinstance(audio, torch.Tensor):
            if audio.is_complex():
                kind = "c"
            elif audio.dtype == torch.bool:
                kind = "b"
            elif not audio.is_floating_point():
                kind = "i"
            else:
                kind = "f"
                audio = audio.detach().cpu().float().numpy()
            dtype = str(audio.dtype)
        else:
            try:
                audio = np.asarray(audio)
            except ValueError as err:  # ragged nested lists
                raise ValueError(f"{name} is not a 1-D sequence of floats: {err}") from err
            kind, dtype = audio.dtype.kind, str(audio.dtype)
            if kind in "US":  # numpy strings: file paths, most likely
                raise ValueError(_not_a_waveform_message(name, audio))

        if len(audio.shape) != 1:
            raise ValueError(
                f"{name} has shape {tuple(audio.shape)}, but MaskSpec expects mono 1-D waveforms: downmix "
                "multi-channel audio with `audio.mean(axis=0)` (channels first) and pass a batch as a list of 1-D "
                "arrays."
            )
        if kind in "iu":
            raise ValueError(
                f"{name} has integer dtype {dtype}, but MaskSpec expects float waveforms in [-1, 1]: convert it, e.g. "
                f"{_pcm_to_float_hint(audio)} for {dtype} PCM, or read files with "
                "soundfile.read(path, dtype='float32')."
            )
        if kind == "c":
            raise ValueError(f"{name} has complex dtype {dtype}: MaskSpec expects real float waveforms, not spectra.")
        if kind == "b":
            raise ValueError(f"{name} has bool dtype: MaskSpec expects float waveforms in [-1, 1].")
        if kind != "f":
            raise ValueError(
                f"{name} has dtype {dtype} (object or string?): MaskSpec expects numeric float waveforms, e.g. "
                "from soundfile.read(path, dtype='float32')."
            )
        if audio.size == 0:
            raise ValueError(f"{name} is empty: remove empty clips from the input.")
        if not np.isfinite(audio).all():
            raise ValueError(f"{name} contains NaN or Inf values: fix or drop the clip.")
        return audio.astype(np.float32, copy=False)

    def _check_length(self, audio: np.ndarray, name: str):
        if len(audio) < self.min_num_samples:
            raise ValueError(
                f"{name} is too short: {len(audio)} samples ({len(audio) / self.sampling_rate:.3f} s at "
                f"{self.sampling_rate} Hz), but MaskSpec needs at least {self.min_frames} frames (one patch), i.e. "
                f"{self.min_num_samples} samples = {self.min_num_samples / self.sampling_rate:.3f} s: pad it "
                "(e.g. np.pad) or drop it."
            )

    def _prepare(self, clips: list, names: list[str], sampling_rate: int) -> list[np.ndarray]:
        """Validates (and resamples when `sampling_rate` differs) a list of clips."""
        waves = [self._to_waveform(clip, name) for clip, name in zip(clips, names)]
        return self._resample(waves, names, sampling_rate)

    def _resample(self, waves: list[np.ndarray], names: list[str], sampling_rate: int) -> list[np.ndarray]:
        """Resamples validated clips from `sampling_rate` to ours (when they differ) and checks their length."""
        if sampling_rate != self.sampling_rate:
            import soxr  # only needed for resampling

            waves = [soxr.resample(w, sampling_rate, self.sampling_rate).astype(np.float32, copy=False) for w in waves]
        for wave, name in zip(waves, names):
            self._check_length(wave, name)
        return waves

    # ------------------------------------------------------------------ features

    # Frames per block of the STFT -> power -> mel pipeline: small enough that a block's frames, spectrum and power
    # stay in cache and reuse their buffers (one 128 MB batch-wide spectrum was the main cost), large enough that the
    # few torch ops per block keep both threads busy (every op is a parallel region; many small ones cost most on a
    # busy machine).
    _frames_per_block = 8000

    def _padded_batch(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        """Clips (pre-emphasized, unless that happens per frame) in one zero-filled `[batch, samples]` array, so that
        the `n_fft`-sample STFT frames are a strided view. When `center`, each clip is reflect-padded by
        `n_fft // 2` at both ends with its own samples (as `torch.stft(center=True, pad_mode="reflect")` pads one
        clip). Also returns each clip's number of frames."""
        pre = self._signal_trim
        pad = self.n_fft // 2 if self.center else 0
        num_frames = [self.frames_for_samples(len(wave)) for wave in waves]
        total = (max(num_frames) - 1) * self.hop_length + self.n_fft
        x = np.zeros((len(waves), total), dtype=np.float32)
        for row, wave in zip(x, waves):
            # Samples past the last frame are never used (and may not fit).
            length = min(len(wave) - pre, total - pad)
            signal = row[pad : pad + length]
            if pre:
                np.multiply(wave[:length], -self.preemphasis, out=signal)
                signal += wave[1 : length + 1]
            else:
                signal[:] = wave[:length]
            if pad:
                # Reflect without repeating the edge sample; a clip has more than `pad` samples (`min_num_samples`).
                row[:pad] = signal[1 : pad + 1][::-1]
                right = min(pad, total - pad - length)
                row[pad + length : pad + length + right] = signal[length - 1 - right : length - 1][::-1]
        return torch.from_numpy(x), num_frames

    def _frame_ops(self, frames: torch.Tensor) -> torch.Tensor:
        """Kaldi's per-frame steps, in place on the `win_length` samples of each frame: DC removal, then
        pre-emphasis with the first sample against itself."""
        if self.remove_dc_offset:
            frames.sub_(frames.mean(dim=-1, keepdim=True))
        if self.preemphasis and self.preemphasis_per_frame:
            previous = frames[..., :-1].clone()
            frames[..., 1:].sub_(previous, alpha=self.preemphasis)
            frames[..., 0].mul_(1 - self.preemphasis)
        return frames

    def _log_mel(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unnormalized log-mels `[batch, frames, feature_size]` and frame counts `[batch]` of validated clips.

        Frames past a clip's own count hold garbage; callers mask them.
        """
        x, num_frames = self._padded_batch(waves)
        batch_size, max_frames = len(waves), max(num_frames)
        # Only the FFT bins some mel filter covers (f_min..f_max) take part.
        used = (self.mel_filters != 0).any(dim=1).nonzero()
        low, high = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, self.mel_filters.shape[0])
        mel_filters = self.mel_filters[low:high]

        # Blocks of about `_frames_per_block` frames (several short clips, or part of a long one) go through reused
        # buffers: STFT frames (a strided view) * window -> rfft -> power -> mel; then one log over the whole batch.
        if max_frames >= self._frames_per_block:
            clips_per_block, frames_per_block = 1, self._frames_per_block
        else:
            clips_per_block, frames_per_block = min(batch_size, self._frames_per_block // max_frames), max_frames
        windowed = torch.empty(clips_per_block, frames_per_block, self.n_fft)
        per_frame_ops = self.remove_dc_offset or (self.preemphasis and self.preemphasis_per_frame)
        first_sample = self._window_start
        spectrum = torch.empty(clips_per_block, frames_per_block, self.n_fft // 2 + 1, dtype=torch.complex64)
        power = torch.empty(clips_per_block, frames_per_block, high - low)
        log_mel = torch.empty(batch_size, max_frames, self.feature_size)
        for start in range(0, batch_size, clips_per_block):
            stop = min(batch_size, start + clips_per_block)
            for first in range(0, max_frames, frames_per_block):
                last = min(max_frames, first + frames_per_block)
                size, count = stop - start, last - first
                signal = x[start:stop, first * self.hop_length : (last - 1) * self.hop_length + self.n_fft]
                frames = signal.unfold(1, self.n_fft, self.hop_length)
                if per_frame_ops:
                    frames = windowed[:size, :count].copy_(frames)
                    self._frame_ops(frames[..., first_sample : first_sample + self.win_length])
                    frames = frames.mul_(self.window)
                else:
                    frames = torch.mul(frames, self.window, out=windowed[:size, :count])
                bins = torch.fft.rfft(frames, dim=-1, out=spectrum[:size, :count])[..., low:high]
                block_power = torch.mul(bins.real, bins.real, out=power[:size, :count])
                block_power.addcmul_(bins.imag, bins.imag)
                torch.matmul(block_power, mel_filters, out=log_mel[start:stop, first:last])
        if self.log_offset_mode == "max":
            log_mel.clamp_(min=self.log_offset)
        else:
            log_mel.add_(self.log_offset)
        return log_mel.log_(), torch.tensor(num_frames)

    def _normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        """`(x - mean) / (std_multiplier * std)` in place (when `do_normalize`), per mel bin for list statistics."""
        if not self.do_normalize:
            return log_mel
        mean, std = (torch.tensor(v) if isinstance(v, list) else v for v in (self.mean, self.std))
        return log_mel.sub_(mean).div_(std * self.std_multiplier if self.std_multiplier != 1 else std)

    def __call__(
        self,
        raw_speech: np.ndarray | torch.Tensor | list[float] | list[np.ndarray | torch.Tensor | list[float]],
        sampling_rate: int | None = None,
        padding: bool | str | PaddingStrategy | None = None,
        max_length: int | None = None,
        truncation: bool | None = None,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | TensorType | None = None,
        resample: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """
        Computes normalized log-mel features of one clip or a batch of clips.

        Args:
            raw_speech: One mono waveform (1-D `np.ndarray`, `torch.Tensor` or list of floats, values in [-1, 1]) or
                a list of them.
            sampling_rate: Rate of `raw_speech` in Hz; strongly recommended, to catch mismatched audio.
            padding: `"longest"`/`True` pads to the longest clip, `"max_length"` to `max_length` frames (or to the
                longest clip, if longer and not truncated), `False`/`"do_not_pad"` returns one array per clip.
                Defaults to `"longest"`, or to the fixed length of `pad_or_truncate` (see there).
            max_length: Frames for `padding="max_length"` and `truncation`; defaults to `max_length_frames`.
            truncation: Keep only the first `max_length` frames of each clip.
            pad_to_multiple_of: Round the padded number of frames up to a multiple of this.
            return_attention_mask: Whether to return `attention_mask`; defaults to `self.return_attention_mask`.
            return_tensors: `"pt"`, `"np"`, or `None` for lists of numpy arrays.
            resample: Resample with soxr when `sampling_rate` differs from `self.sampling_rate` instead of raising.

        Returns:
            [`BatchFeature`] with `input_values` (`[batch, frames, feature_size]`, float32) and `attention_mask`
            (`[batch, frames]`, int32, 1 = real frame).
        """
        if kwargs:
            logger.warning(f"{type(self).__name__} ignores unsupported arguments: {sorted(kwargs)}.")
        fixed_length = padding is None and self.pad_or_truncate
        if fixed_length:
            padding = "max_length"
            truncation = True if truncation is None else truncation
        padding = PaddingStrategy({None: "longest", True: "longest", False: "do_not_pad"}.get(padding, padding))
        truncation = bool(truncation)
        max_length = self.max_length_frames if max_length is None else max_length
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask

        is_batched = isinstance(raw_speech, (list, tuple)) and any(
            isinstance(clip, (list, tuple, torch.Tensor, str, bytes, os.PathLike))
            or (isinstance(clip, np.ndarray) and clip.ndim > 0)
            for clip in raw_speech
        )
        clips = list(raw_speech) if is_batched else [raw_speech]
        names = [f"clip {i}" for i in range(len(clips))] if is_batched else ["the audio"]
        # The samples are checked before the rate: a wrong input (integer PCM, a path, stereo) gets the same error
        # whatever rate it comes at.
        waves = [self._to_waveform(clip, name) for clip, name in zip(clips, names)]
        sampling_rate = self._check_rate(sampling_rate, resample)
        waves = self._resample(waves, names, sampling_rate)

        if truncation:
            # Samples beyond this never reach the first `max_length` frames, so cropping early is exact and cheap.
            keep = (max_length - 1) * self.hop_length + self.n_fft + self._signal_trim
            waves = [w[:keep] for w in waves]
        log_mel, num_frames = self._log_mel(waves)
        features = self._normalize(log_mel)
        if truncation:
            features, num_frames = features[:, :max_length], num_frames.clamp(max=max_length)

        if padding == PaddingStrategy.DO_NOT_PAD:
            num_padded = features.shape[1]
        else:
            num_padded = int(num_frames.max())
            if padding == PaddingStrategy.MAX_LENGTH:
                num_padded = max(num_padded, max_length)
            if pad_to_multiple_of:
                num_padded = math.ceil(num_padded / pad_to_multiple_of) * pad_to_multiple_of
            if num_padded > features.shape[1]:
                features = torch.nn.functional.pad(features, (0, 0, 0, num_padded - features.shape[1]))
        mask = torch.arange(num_padded) < num_frames.unsqueeze(1)
        features = features.masked_fill_(~mask.unsqueeze(-1), self.padding_value).contiguous()
        if fixed_length:  # the padding is part of the fixed-length input
            mask = torch.ones_like(mask)
        mask = mask.int()

        if padding == PaddingStrategy.DO_NOT_PAD:
            features = [f[:n] for f, n in zip(features, num_frames.tolist())]
            mask = [m[:n] for m, n in zip(mask, num_frames.tolist())]
            if return_tensors is not None and len(set(num_frames.tolist())) > 1:
                raise ValueError(
                    "padding=False gives clips of different lengths, which cannot be stacked into tensors: pass "
                    "padding='longest' or return_tensors=None."
                )
        data = {"input_values": features}
        if return_attention_mask:
            data["attention_mask"] = mask
        return BatchFeature(self._to_output(data, return_tensors))

    @staticmethod
    def _to_output(data: dict, return_tensors: str | TensorType | None) -> dict:
        """Torch tensors (or lists of them) -> stacked `pt`/`np` tensors, or lists of numpy arrays."""
        tensor_type = None if return_tensors is None else TensorType(return_tensors)
        output = {}
        for key, value in data.items():
            if tensor_type is not None and isinstance(value, list):
                value = torch.stack(value)
            if tensor_type == TensorType.PYTORCH:
                output[key] = value
            elif tensor_type == TensorType.NUMPY:
                output[key] = value.numpy()
            elif tensor_type is None:
                output[key] = [v.numpy() for v in value]
            else:
                raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        return output

    # ------------------------------------------------------------------ normalization statistics

    def _iter_clips(self, audio, sampling_rate: int | None, audio_column: str):
        """Yields `(waveform, rate)` from arrays, `{"array", "sampling_rate"}` dicts, decoders or dataset rows."""
        if isinstance(audio, (np.ndarray, torch.Tensor)) and audio.ndim == 1:
            audio = [audio]
        elif hasattr(audio, "select_columns") and audio_column in (getattr(audio, "column_names", None) or ()):
            audio = audio.select_columns(audio_column)  # skip decoding other columns
        for item in audio:
            if isinstance(item, Mapping) and audio_column in item:
                item = item[audio_column]
            if isinstance(item, Mapping):
                if "array" not in item:
                    raise ValueError(
                        f"Cannot find audio in a row with keys {sorted(item)}: pass audio_column=<name of the audio "
                        "column>, or rows holding {'array': ..., 'sampling_rate': ...} dicts or audio decoders."
                    )
                yield item["array"], item.get("sampling_rate")
            elif hasattr(item, "get_all_samples"):
                samples = item.get_all_samples()
                # torchcodec decoders give [channels, samples]: downmix to mono.
                yield samples.data.mean(dim=0), samples.sample_rate
            else:
                yield item, sampling_rate

    def compute_normalization_stats(
        self,
        audio: Iterable,
        sampling_rate: int | None = None,
        audio_column: str = "audio",
        max_clips: int | None = None,
        batch_size: int = 16,
        update: bool = True,
        per_bin: bool = False,
    ) -> tuple[float, float] | tuple[list[float], list[float]]:
        """
        Mean and standard deviation of the (unnormalized) log-mel values of a set of clips: global, or per mel bin
        over all frames with `per_bin=True` (as MaskSpec's `mean_std_128.npy`).

        `audio` is a list of 1-D arrays at `sampling_rate`, or an iterable / `datasets.Dataset` / `IterableDataset`
        whose rows hold `row[audio_column]` as a `{"array", "sampling_rate"}` dict or a torchcodec `AudioDecoder`
        (multi-channel decoded audio is downmixed). Clips at another rate are resampled with soxr. Only real frames
        count. With `update=True` the result is stored in `self.mean` / `self.std`, so `save_pretrained` keeps it
        (`std_multiplier` and `padding_value` stay as they are).

        Returns:
            `(mean, std)` as floats, or as lists of `feature_size` floats with `per_bin=True`.
        """
        width = self.feature_size if per_bin else 1
        count, mean, m2 = 0, torch.zeros(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64)

        def accumulate(waves):
            nonlocal count, mean, m2
            log_mel, num_frames = self._log_mel(waves)
            mask = torch.arange(log_mel.shape[1]) < num_frames.unsqueeze(1)
            values = log_mel[mask].double().reshape(-1, width)
            # Chan et al.'s parallel update: merge this batch's (count, mean, M2) into the running totals.
            n = values.shape[0]
            batch_mean = values.mean(dim=0)
            batch_m2 = (values - batch_mean).square().sum(dim=0)
            delta = batch_mean - mean
            total = count + n
            mean += delta * n / total
            m2 += batch_m2 + delta**2 * count * n / total
            count = total

        pending: dict[int, list] = {}  # rate -> [(index, clip)]
        num_clips = 0
        for index, (clip, rate) in enumerate(self._iter_clips(audio, sampling_rate, audio_column)):
            if max_clips is not None and index >= max_clips:
                break
            rate = self._check_rate(rate, resample=True, warn_once=True)
            group = pending.setdefault(int(rate), [])
            group.append((index, clip))
            num_clips += 1
            if len(group) == batch_size:
                accumulate(self._prepare([c for _, c in group], [f"clip {i}" for i, _ in group], int(rate)))
                group.clear()
        for rate, group in pending.items():
            if group:
                accumulate(self._prepare([c for _, c in group], [f"clip {i}" for i, _ in group], rate))
        if count == 0:
            raise ValueError("compute_normalization_stats got no audio: pass at least one clip.")

        std = (m2 / count).sqrt()
        constant = (std == 0).nonzero().flatten().tolist()
        if per_bin and constant:
            # Empty filters (narrower than an FFT bin) always hold the log floor: normalizing only shifts them.
            logger.warning(f"Mel bins {constant} are constant over this audio: their std is set to 1.")
            std[constant] = 1.0
        elif update and constant:
            raise ValueError("The log-mel values are constant (std 0): compute the statistics over more audio.")
        mean, std = (mean.tolist(), std.tolist()) if per_bin else (mean.item(), std.item())
        if update:
            self.mean, self.std = mean, std
        logger.info(
            f"Log-mel statistics over {num_clips} clips ({count * width} values): "
            f"mean={np.mean(mean):.4f}, std={np.mean(std):.4f}" + (" (averaged over bins)" if per_bin else "")
        )
        return mean, std


def _check_sampling_rate(rate, what: str) -> None:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, (int, float, np.integer, np.floating))
        or not 0 < rate < math.inf
    ):
        raise ValueError(
            f"{what} must be a positive number of Hz, got {rate!r}: pass e.g. sampling_rate=32000 (MaskSpec's rate)."
        )


def _scalar_or_list(value) -> float | list[float]:
    """A statistic as a float, or as a list of floats when it has one value per mel bin (JSON-friendly)."""
    array = np.asarray(value.tolist() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if array.ndim > 1:
        raise ValueError(f"mean and std must be a number or a 1-D list (one per mel bin), got shape {array.shape}.")
    return array.tolist() if array.ndim == 1 else float(array)


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _normalized_zero(mean, std, std_multiplier: float) -> float:
    """Where a raw log-mel of 0 lands after normalization (scalar statistics), or 0.0 for per-bin ones."""
    if isinstance(mean, (list, tuple, np.ndarray)) or isinstance(std, (list, tuple, np.ndarray)):
        return 0.0
    return -float(mean) / (std_multiplier * float(std))


def _not_a_waveform_message(name: str, audio) -> str:
    return (
        f"{name} is a file path or encoded bytes ({str(audio)[:80]!r}), but the feature extractor takes decoded "
        "waveforms: decode it first, e.g. `audio, rate = soundfile.read(path, dtype='float32')` and call the extractor "
        "with `sampling_rate=rate`, or use `pipeline('audio-classification', model=...)`, which takes file paths."
    )


def _pcm_to_float_hint(audio) -> str:
    """How to scale this integer array to [-1, 1], from its width and signedness (e.g. int16: divide by 32768)."""
    if isinstance(audio, torch.Tensor):
        bits, signed, as_float = 8 * audio.element_size(), audio.dtype.is_signed, "audio.float()"
    else:
        bits, signed, as_float = 8 * audio.dtype.itemsize, audio.dtype.kind == "i", "audio.astype(np.float32)"
    full_scale = 2 ** (bits - 1)
    return f"`{as_float} / {full_scale}`" if signed else f"`({as_float} - {full_scale}) / {full_scale}`"


__all__ = ["MaskSpecFeatureExtractor"]
