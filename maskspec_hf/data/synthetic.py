# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""A deterministic synthetic corpus of two-vowel "words" said by random speakers: the package's built-in data.

A word is a vowel, a glide of its formants into a second vowel, and that vowel, voiced on a harmonic source (additive
synthesis under a three-formant envelope). Every clip has its own speaker: pitch (85-300 Hz, drifting, with
vibrato), vocal-tract length (all formants scaled by 0.82-1.22) and speaking rate (0.8-1.25), so neither pitch nor
formant frequencies are fixed per class. A clip holds two or three utterances of one word at random onsets and levels
over coloured background noise. The 8 classes are 4 vowel pairs in both orders (a-i and i-a, ...): the two words of a
pair are made of the same sounds for the same durations, so their average spectrum is the same, and only the order of
the vowels, which way the formants glide, tells them apart. Time-frequency structure across 160 ms patches, and
invariance to the speaker, are what masked-spectrogram pre-training has to learn here and pooled spectra cannot show.

The corpus is a real `datasets.Dataset` with an `Audio` column and AudioSet's columns (`video_id`, `audio`,
`labels`, `human_labels`), so it runs through the same code path as AudioSet from the Hub, plus `label` (a
`ClassLabel`, the clip's class) and `snr_db`. A clip depends only on `(index, seed)` (and the clip length and
sampling rate), so any clip can be regenerated on its own and generation can be split across processes.
"""

from __future__ import annotations

import os

import numpy as np
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, List, Value
from scipy import fft as sp_fft

from .synthetic_cache import cached_clips, default_cache_dir


__all__ = [
    "GENERATOR_VERSION",
    "HUMAN_LABELS",
    "SOUND_EVENT_TYPES",
    "TEST_INDEX_OFFSET",
    "VOWEL_FORMANTS",
    "WORDS",
    "default_cache_dir",
    "formant_tracks",
    "make_sound_events_dataset",
    "make_sound_events_splits",
    "synthesize_clip",
    "synthesize_word",
]

# Bump whenever the generated audio or metadata changes, so stale caches are not reused.
GENERATOR_VERSION = 7
# Test clips are drawn from indices far above any training index, so the test split neither overlaps the training
# split nor changes when `num_train` does.
TEST_INDEX_OFFSET = 1_000_000

# First three formants (Hz) of an adult male speaker, textbook averages; a speaker scales all three.
VOWEL_FORMANTS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
_PAIRS = (("a", "i"), ("a", "u"), ("i", "u"), ("e", "o"))
WORDS: dict[str, tuple[str, str]] = {
    f"{a}-{b}": (a, b) for first, second in _PAIRS for a, b in ((first, second), (second, first))
}
SOUND_EVENT_TYPES: tuple[str, ...] = tuple(WORDS)
HUMAN_LABELS: dict[str, str] = {name: f"Vowel /{a}/ gliding into /{b}/" for name, (a, b) in WORDS.items()}

_FORMANT_BANDWIDTHS = (80.0, 110.0, 160.0)  # Hz, scaled with the formants
_FORMANT_GAINS = (1.0, 0.5, 0.25)
_TOP_HZ = 7000.0  # highest harmonic (below 0.45 x the sampling rate)
_CONTROL_HOP = 64  # samples between control points of pitch and amplitudes
_UTTERANCES_PER_CLIP = (2, 3)  # at least, at most


# ---------------------------------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------------------------------


def _num_samples(duration: float, sampling_rate: int) -> int:
    return max(1, int(round(duration * sampling_rate)))


def _fade(x: np.ndarray, sampling_rate: int, seconds: float) -> np.ndarray:
    """Raised-cosine fade-in and fade-out in place, so utterances start and end without clicks."""
    k = min(len(x) // 2, int(seconds * sampling_rate))
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k, endpoint=False))
        x[:k] *= ramp
        x[len(x) - k :] *= ramp[::-1]
    return x


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    size = sp_fft.next_fast_len(n, real=True)
    spectrum = sp_fft.rfft(rng.standard_normal(size))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    spectrum *= freqs ** (-exponent / 2)
    spectrum[0] = 0.0
    x = sp_fft.irfft(spectrum, size)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def formant_tracks(vowels: tuple[str, str], segments: tuple[float, float, float], scale: float, times: np.ndarray):
    """`[3, len(times)]` formant frequencies (Hz) of a word: the first vowel for `segments[0]` seconds, a smooth glide
    for `segments[1]`, then the second vowel; every formant scaled by the speaker's `scale`."""
    first, second = (np.asarray(VOWEL_FORMANTS[v]) * scale for v in vowels)
    w = np.clip((times - segments[0]) / segments[1], 0.0, 1.0)
    w = w * w * (3 - 2 * w)  # smoothstep: the glide starts and ends at rest
    return first[:, None] * (1 - w) + second[:, None] * w


def _envelope(freqs: np.ndarray, formants: np.ndarray, scale: float) -> np.ndarray:
    """Amplitude of harmonics at `freqs` `[H, T]` under formants `[3, T]`: a resonance per formant over a source
    falling with frequency."""
    amplitude = np.zeros_like(freqs)
    for track, bandwidth, gain in zip(formants, _FORMANT_BANDWIDTHS, _FORMANT_GAINS):
        amplitude += gain / (1 + ((freqs - track[None]) / (bandwidth * scale / 2)) ** 2)
    return amplitude * (np.maximum(freqs, 50.0) / 500.0) ** -0.6


def synthesize_word(rng: np.random.Generator, vowels: tuple[str, str], speaker: dict, sampling_rate: int):
    """One utterance of the word `vowels` by `speaker` (`f0_hz`, `formant_scale`, `rate`): its waveform (peak about
    1) and duration (s). Vowels last 0.12-0.22 s and the glide 0.06-0.12 s, divided by the rate."""
    rate, scale = speaker["rate"], speaker["formant_scale"]
    segments = tuple(float(rng.uniform(*bounds)) / rate for bounds in ((0.12, 0.22), (0.06, 0.12), (0.12, 0.22)))
    duration = sum(segments)
    n = _num_samples(duration, sampling_rate)
    control = np.arange(n // _CONTROL_HOP + 2) * _CONTROL_HOP / sampling_rate
    drift, vibrato_hz = rng.uniform(-0.15, 0.15), rng.uniform(4.0, 6.0)
    f0 = speaker["f0_hz"] * (1 + drift * control / duration) * (1 + 0.02 * np.sin(2 * np.pi * vibrato_hz * control))
    top = min(_TOP_HZ, 0.45 * sampling_rate)
    harmonics = np.arange(1, int(top / f0.min()) + 1)[:, None]
    freqs = harmonics * f0[None]
    loudness = np.sin(np.pi * np.clip(control / duration, 0.0, 1.0)) ** 0.5
    amplitudes = _envelope(freqs, formant_tracks(vowels, segments, scale, control), scale) * (freqs < top) * loudness

    # Pitch and amplitudes move at the control rate; the phase of harmonic k is k times the running phase of f0.
    position = np.arange(n) / _CONTROL_HOP
    grid = np.arange(len(control))
    phase = 2 * np.pi * np.cumsum(np.interp(position, grid, f0)) / sampling_rate
    wave = np.zeros(n)
    for k, row in enumerate(amplitudes, start=1):
        wave += np.interp(position, grid, row) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    wave += 0.02 * rng.standard_normal(n) * np.interp(position, grid, loudness)  # breath
    return wave / (np.max(np.abs(wave)) + 1e-12), duration


# ---------------------------------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------------------------------


def _video_id(index: int) -> str:
    return f"synth-{index:06d}"


def _draw_speaker(rng: np.random.Generator) -> dict:
    return {
        "f0_hz": round(float(np.exp(rng.uniform(np.log(85.0), np.log(300.0)))), 2),
        "formant_scale": round(float(rng.uniform(0.82, 1.22)), 4),
        "rate": round(float(rng.uniform(0.8, 1.25)), 4),
    }


def synthesize_clip(
    index: int,
    seed: int = 0,
    clip_seconds: float = 10.0,
    sampling_rate: int = 32000,
    sound_class: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Generate clip `index` of the corpus with `seed`: a float32 waveform in [-1, 1] and its metadata.

    The clip depends only on its arguments. `sound_class` forces its word (default: one of `SOUND_EVENT_TYPES` drawn
    at random). Metadata: `video_id`, `labels` (`[word]`), `human_labels`, `label` (index of the word in
    `SOUND_EVENT_TYPES`), `snr_db` and `events` (one per utterance: onset, duration, level and speaker).
    """
    rng = np.random.default_rng([seed, index])
    n = _num_samples(clip_seconds, sampling_rate)
    drawn = SOUND_EVENT_TYPES[int(rng.integers(len(SOUND_EVENT_TYPES)))]
    sound_class = drawn if sound_class is None else sound_class
    if sound_class not in WORDS:
        raise ValueError(f"Unknown class {sound_class!r}; choose from {SOUND_EVENT_TYPES}.")

    speaker = _draw_speaker(rng)
    foreground, active, events = np.zeros(n), np.zeros(n, dtype=bool), []
    for _ in range(int(rng.integers(_UTTERANCES_PER_CLIP[0], _UTTERANCES_PER_CLIP[1] + 1))):
        # Each utterance varies a little around its speaker's pitch, as a repeated word does.
        voice = {**speaker, "f0_hz": round(speaker["f0_hz"] * float(rng.uniform(0.95, 1.05)), 2)}
        wave, duration = synthesize_word(rng, WORDS[sound_class], voice, sampling_rate)
        start = int(rng.integers(0, max(1, n - len(wave))))
        wave = _fade(wave[: n - start], sampling_rate, 0.005)
        level_db = round(float(rng.uniform(-6, 0)), 2)
        foreground[start : start + len(wave)] += wave * 10 ** (level_db / 20)
        active[start : start + len(wave)] = True
        events.append(
            {"onset": round(start / sampling_rate, 4), "duration": round(duration, 4), "level_db": level_db, **voice}
        )

    # SNR compares the words with the background while they sound, not over the whole clip.
    snr_db = float(rng.uniform(5, 25))
    background = _colored_noise(rng, n, exponent=rng.uniform(0.0, 1.5))
    mix = foreground + background * np.sqrt(np.mean(foreground[active] ** 2) / 10 ** (snr_db / 10))
    # Peak-normalize to a random level (recordings differ in loudness) that always leaves headroom.
    mix *= 10 ** (rng.uniform(-12, -1) / 20) / (np.max(np.abs(mix)) + 1e-12)
    meta = {
        "video_id": _video_id(index),
        "labels": [sound_class],
        "human_labels": [HUMAN_LABELS[sound_class]],
        "label": SOUND_EVENT_TYPES.index(sound_class),
        "snr_db": snr_db,
        "events": sorted(events, key=lambda e: e["onset"]),
    }
    return mix.astype(np.float32), meta


# ---------------------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------------------


def make_sound_events_dataset(
    num_clips: int = 512,
    seed: int = 0,
    clip_seconds: float = 10.0,
    sampling_rate: int = 32000,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    start_index: int = 0,
) -> Dataset:
    """Build (or load from cache) the synthetic corpus (two-vowel words) as a `datasets.Dataset`.

    Clips `start_index .. start_index + num_clips - 1` are written as 16-bit WAV files into a folder named after a hash
    of the parameters under `cache_dir` (default: `default_cache_dir()`), and reused on later calls. The folder is
    filled under a temporary name and renamed when complete, so an interrupted run is never taken for a finished one.
    `num_proc` worker processes generate the clips (default: one per CPU for large corpora).

    Columns: `video_id`, `audio` (`Audio(sampling_rate)`), `labels` and `human_labels` (lists of str), as in AudioSet;
    plus `label` (`ClassLabel` over `SOUND_EVENT_TYPES`, the clip's class) and `snr_db`.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be positive, got {num_clips}.")
    params = {
        "version": GENERATOR_VERSION,
        "num_clips": int(num_clips),
        "seed": int(seed),
        "clip_seconds": float(clip_seconds),
        "sampling_rate": int(sampling_rate),
        "start_index": int(start_index),
    }
    # `synthesize_clip` is looked up here, at call time, so a patched one (tests) is the one used.
    directory, clips = cached_clips(synthesize_clip, params, cache_dir, num_proc)
    features = Features(
        {
            "video_id": Value("string"),
            "audio": Audio(sampling_rate=sampling_rate),
            "labels": List(Value("string")),
            "human_labels": List(Value("string")),
            "label": ClassLabel(names=list(SOUND_EVENT_TYPES)),
            "snr_db": Value("float32"),
        }
    )
    columns = {
        "video_id": [c["video_id"] for c in clips],
        "audio": [str(directory / f"{c['video_id']}.wav") for c in clips],
        "labels": [c["labels"] for c in clips],
        "human_labels": [c["human_labels"] for c in clips],
        "label": [c["label"] for c in clips],
        "snr_db": [c["snr_db"] for c in clips],
    }
    return Dataset.from_dict(columns, features=features)


def make_sound_events_splits(num_train: int, num_test: int, seed: int = 0, **kwargs) -> DatasetDict:
    """Disjoint `train` and `test` splits of the corpus as a `datasets.DatasetDict`.

    The test clips come from indices starting at `TEST_INDEX_OFFSET`, so they never overlap the training clips and
    stay the same whatever `num_train` is. Other keyword arguments go to `make_sound_events_dataset`.
    """
    if num_train > TEST_INDEX_OFFSET:
        raise ValueError(f"num_train must be at most {TEST_INDEX_OFFSET}, got {num_train}.")
    return DatasetDict(
        train=make_sound_events_dataset(num_train, seed=seed, start_index=0, **kwargs),
        test=make_sound_events_dataset(num_test, seed=seed, start_index=TEST_INDEX_OFFSET, **kwargs),
    )
