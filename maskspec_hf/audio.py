# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""The one way audio enters maskspec-hf: decode, downmix, resample, validate.

Training, fine-tuning, probing and batch classification all read clips that may be corrupt, empty, silent, NaN-filled
or at the wrong rate. They all go through these few functions so that a clip is judged the same way everywhere, and a
bad clip is a `ClipError` with a short `reason` (one of `SKIP_REASONS`) that callers count and log instead of crashing.
Encoded audio is decoded by libsndfile (`soundfile`: WAV, FLAC, OGG, ...; ~20x less CPU than opening an FFmpeg
decoder per clip, which dominated a CPU pre-training step) and resampled with soxr; what libsndfile cannot read goes to
`datasets`' own `Audio` feature (torchcodec/FFmpeg, which also resamples). `decode_audio_window` decodes only the
random crop a training step keeps, where libsndfile can seek.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping

import numpy as np


# Why a clip was skipped. Counted per reason in the training logs.
SKIP_REASONS = ("decode_error", "empty", "too_short", "non_finite")


class ClipError(Exception):
    """A clip cannot be used; `reason` is one of `SKIP_REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def resample_audio(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a 1-D float waveform with soxr (high quality), keeping its float dtype; a no-op at the same rate.

    Integer PCM is rejected rather than cast: cast without scaling, int16 audio is 32768 times too loud."""
    waveform = np.asarray(waveform)
    if waveform.dtype.kind != "f":
        raise ValueError(
            f"resample_audio expects a float waveform in [-1, 1], got dtype {waveform.dtype}: convert it first, e.g. "
            "`audio.astype(np.float32) / 32768` for int16 PCM."
        )
    if int(orig_rate) == int(target_rate):
        return waveform
    import soxr

    return soxr.resample(waveform, int(orig_rate), int(target_rate))


def decode_audio(value, sampling_rate: int) -> np.ndarray:
    """Decode one audio value to a mono float32 waveform at `sampling_rate`, or raise `ClipError`.

    `value` is what a `datasets` audio column holds: an encoded `{"bytes", "path"}` dict (decoded by libsndfile and
    resampled with soxr, or, for formats libsndfile does not read, by `datasets`' `Audio(sampling_rate=...)`, i.e.
    torchcodec/FFmpeg, which also resamples), a torchcodec `AudioDecoder`, a decoded
    `{"array", "sampling_rate"}` dict (resampled with soxr when needed), or a path or the bytes of a file.
    Multi-channel audio is averaged to mono. Reasons: `empty` (0 bytes, or a file without samples), `decode_error`
    (anything else that fails). Validate the result with `check_waveform`.
    """
    return _decode(value, sampling_rate)[0]


def read_audio(value) -> tuple[np.ndarray, int]:
    """`(mono float32 waveform, its sampling rate)` of one audio value (as for `decode_audio`), not resampled."""
    return _decode(value, None)


def window_start(length: int, num_samples: int, rng: np.random.Generator | None) -> int:
    """Where a `num_samples` window of a `length`-sample clip starts: uniform over the clip (`rng`), else 0."""
    if rng is None or length <= num_samples:
        return 0
    return int(rng.integers(0, length - num_samples + 1))


def decode_audio_window(value, sampling_rate: int, num_samples: int, rng: np.random.Generator | None) -> np.ndarray:
    """`decode_audio(value, sampling_rate)[start : start + num_samples]` with `start = window_start(...)` over the
    clip's length at `sampling_rate` (a shorter clip whole), decoding only about that window where libsndfile reads
    the file: a 2 s crop of a 10 s clip then costs a fifth of its decoding and resampling. Resampled windows agree
    with the slice of the whole resampled clip to float rounding (the window is resampled with a margin on each
    side). Same reasons as `decode_audio`; only the window is what `check_waveform` then sees."""
    value = _as_encoded(value)
    state = None if rng is None else rng.bit_generator.state
    try:
        window = (
            _window_from_libsndfile(value, sampling_rate, num_samples, rng) if isinstance(value, Mapping) else None
        )
    except Exception:  # noqa: BLE001 - any trouble reading a window: decode the whole clip (and judge it) instead
        window = None
    if window is not None:
        return window
    if state is not None:
        rng.bit_generator.state = state  # the start is drawn once, from the whole clip's length
    wave = decode_audio(value, sampling_rate)
    start = window_start(wave.size, num_samples, rng)
    return wave[start : start + num_samples]


def check_waveform(wave: np.ndarray, min_samples: int) -> None:
    """Raise `ClipError` for an empty clip (`empty`), one holding NaN/Inf (`non_finite`), or one shorter than
    `min_samples` (`too_short`).

    Silence is valid (the feature extractor's log offset keeps it finite).
    """
    if wave.size == 0:
        raise ClipError("empty", "the clip has no samples")
    if not np.isfinite(wave).all():
        raise ClipError("non_finite", f"{int((~np.isfinite(wave)).sum())} of {wave.size} samples are NaN or Inf")
    if wave.size < min_samples:
        raise ClipError("too_short", f"{wave.size} samples, fewer than the {min_samples} needed")


def _decode(value, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    """Both public decoders: `sampling_rate=None` keeps the file's own rate."""
    try:
        value = _as_encoded(value)
        if isinstance(value, Mapping) and "array" in value:
            return _from_array(value, sampling_rate)
        if isinstance(value, Mapping) and _is_zero_byte_file(value):
            raise ClipError("empty", "the audio file is empty (0 bytes)")
        decoded = _from_libsndfile(value) if isinstance(value, Mapping) else None
        if decoded is not None:
            return _at_rate(*decoded, sampling_rate)
        return _from_decoder(_decoder_of(value, sampling_rate), sampling_rate)
    except ClipError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of any decoder on any file means "skip this clip"
        message = f"{type(err).__name__}: {err}".strip()
        raise ClipError("decode_error", message.splitlines()[0][:300] if message else type(err).__name__) from err


def _as_encoded(value):
    """A path or the bytes of a file as datasets' encoded `{"path", "bytes"}` dict; anything else as it is."""
    if isinstance(value, (str, os.PathLike)):
        return {"path": str(value), "bytes": None}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"path": None, "bytes": bytes(value)}
    return value


def _from_array(value: Mapping, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    """An already decoded `{"array", "sampling_rate"}`: downmix, and resample with soxr."""
    wave = np.asarray(value["array"])
    if wave.dtype.kind != "f":
        # Cast without scaling, integer PCM would be thousands of times too loud: refuse it, as the extractor does.
        raise ClipError("decode_error", f"the audio array has integer dtype {wave.dtype}; give floats in [-1, 1]")
    wave = wave.astype(np.float32, copy=False)
    rate = int(value.get("sampling_rate") or sampling_rate or 0)
    if not rate:
        raise ClipError("decode_error", "the audio array has no sampling rate")
    if wave.ndim == 2:  # datasets' convention is [channels, samples]; accept [samples, channels] too
        wave = wave.mean(axis=0 if wave.shape[0] <= wave.shape[1] else 1)
    if wave.ndim != 1:
        raise ValueError(f"audio array has shape {wave.shape}")
    return _at_rate(wave, rate, sampling_rate)


def _from_libsndfile(value: Mapping) -> tuple[np.ndarray, int] | None:
    """`(mono float32 waveform, rate)` of an encoded value that libsndfile reads; None for anything else (other
    formats, a file without samples, any libsndfile error): FFmpeg then decodes it or says why it cannot."""
    handle = _open_with_libsndfile(value)
    if handle is None:
        return None
    try:
        with handle:
            wave, rate = handle.read(dtype="float32", always_2d=True), handle.samplerate
    except Exception:  # noqa: BLE001 - a broken file: FFmpeg's turn
        return None
    if wave.shape[0] == 0:
        return None
    return _mono(wave), int(rate)


def _open_with_libsndfile(value: Mapping):
    """A `soundfile.SoundFile` on an encoded value's bytes or path; None if libsndfile does not read it."""
    import soundfile

    data, path = value.get("bytes"), value.get("path")
    if data is None and path is None:
        return None
    try:
        return soundfile.SoundFile(io.BytesIO(data) if data is not None else path)
    except Exception:  # noqa: BLE001 - not a libsndfile format (or no such file): FFmpeg's turn
        return None


_RESAMPLING_MARGIN = 512  # output samples resampled beyond each side of a window: soxr's filter settles within them


def _window_from_libsndfile(value, sampling_rate: int, num_samples: int, rng) -> np.ndarray | None:
    """The window of `decode_audio_window` read from a file libsndfile opens (None: it does not, or the file holds no
    samples)."""
    handle = None if _is_zero_byte_file(value) else _open_with_libsndfile(value)
    if handle is None:
        return None
    with handle:
        frames, rate = handle.frames, handle.samplerate
        if frames <= 0:
            return None
        if rate == sampling_rate:
            start = window_start(frames, num_samples, rng)
            handle.seek(start)
            return _mono(handle.read(min(num_samples, frames), dtype="float32", always_2d=True))
        length = int(np.floor(frames * sampling_rate / rate + 0.5))  # soxr's output length for the whole clip
        if length <= num_samples:
            return None  # kept whole: nothing to save
        start = window_start(length, num_samples, rng)
        # Read from a source sample that maps onto an output sample exactly, so the window is on the same grid.
        step_in, step_out = rate // math.gcd(rate, sampling_rate), sampling_rate // math.gcd(rate, sampling_rate)
        first_block = max(0, (start - _RESAMPLING_MARGIN) // step_out)
        offset = start - first_block * step_out
        stop = min(
            frames,
            first_block * step_in + math.ceil((offset + num_samples + _RESAMPLING_MARGIN) * rate / sampling_rate),
        )
        handle.seek(first_block * step_in)
        piece = _mono(handle.read(stop - first_block * step_in, dtype="float32", always_2d=True))
    window = resample_audio(piece, rate, sampling_rate)[offset : offset + num_samples]
    return window.astype(np.float32, copy=False) if window.size == num_samples else None


def _mono(samples: np.ndarray) -> np.ndarray:
    """`[samples, channels]` -> mono float32."""
    wave = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _decoder_of(value, sampling_rate: int | None):
    """A torchcodec decoder for an encoded value (`datasets.Audio` makes it, resampling in FFmpeg), or `value`."""
    if not isinstance(value, Mapping):
        return value
    from datasets import Audio

    return Audio(sampling_rate=sampling_rate).decode_example(value)


def _from_decoder(decoder, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    try:
        samples = decoder.get_all_samples()
    except RuntimeError as err:
        if "No audio frames were decoded" in str(err):  # torchcodec's word for a valid file without samples
            raise ClipError("empty", "the audio file holds no samples") from err
        raise
    data = samples.data
    if data.ndim == 2:
        data = data.mean(dim=0)
    wave = data.numpy().astype(np.float32, copy=False)
    return _at_rate(wave, int(samples.sample_rate), sampling_rate)


def _at_rate(wave: np.ndarray, rate: int, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    if sampling_rate is None:
        return wave, rate
    if rate == sampling_rate or not wave.size:
        return wave, sampling_rate
    return resample_audio(wave, rate, sampling_rate).astype(np.float32, copy=False), sampling_rate


def _is_zero_byte_file(value: Mapping) -> bool:
    """An encoded audio value whose file holds nothing: empty `bytes`, or (no bytes) a local file of 0 bytes, as an
    audiofolder gives (a decoder would only say it finds no audio stream, which is not a decode error)."""
    data, path = value.get("bytes"), value.get("path")
    if data is not None:
        return len(data) == 0
    try:
        return bool(path) and os.path.isfile(path) and os.path.getsize(path) == 0
    except (OSError, TypeError, ValueError):
        return False


__all__ = [
    "SKIP_REASONS",
    "ClipError",
    "check_waveform",
    "decode_audio",
    "decode_audio_window",
    "read_audio",
    "resample_audio",
    "window_start",
]
