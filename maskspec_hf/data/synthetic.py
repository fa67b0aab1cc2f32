# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""A deterministic synthetic "sound events" corpus whose classes differ only in time-frequency structure: the
package's built-in default data.

The frequency range is cut into `NUM_BANDS` (8) bands, evenly spaced on the Kaldi mel scale of the front end, so at
32 kHz each band lies inside one row of 16-mel-bin patches. A clip is a sequence of sound events over coloured
background noise; every event sounds in two bands at once (same onset, same duration, each band with its own texture
and level: band-limited noise, a few steady tones, or a rattle). A class is a *pairing* of the bands: which band always
sounds together with which. The 7 classes are the 7 perfect matchings of a 1-factorization of the 8 bands, so every
pair of bands belongs to exactly one class, and every band appears in every class equally often, at the same random
onsets, durations and levels. The average spectrum, the per-band level statistics and the average patch are therefore
the same for every class (a log-mel mean+std classifier is at chance); only which bands switch on *together* tells
the classes apart. That is what masked-spectrogram pre-training has to learn to fill in a masked band from the visible
bands of the same time step, and what features pooled per band cannot see.

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
    "BAND_PAIRINGS",
    "GENERATOR_VERSION",
    "HUMAN_LABELS",
    "NUM_BANDS",
    "SOUND_EVENT_TYPES",
    "TEST_INDEX_OFFSET",
    "TEXTURES",
    "band_edges",
    "default_cache_dir",
    "make_sound_events_dataset",
    "make_sound_events_splits",
    "synthesize_clip",
]

# Bump whenever the generated audio or metadata changes, so stale caches are not reused.
GENERATOR_VERSION = 4
# Test clips are drawn from indices far above any training index, so the test split neither overlaps the training
# split nor changes when `num_train` does.
TEST_INDEX_OFFSET = 1_000_000

NUM_BANDS = 8
_TOP_HZ = 15000.0  # the front end's f_max: bands follow its mel axis
_EVENTS_PER_PAIR_PER_SECOND = 2.5
_EVENT_SECONDS = (0.06, 0.16)  # at most about one 160 ms patch: a band's own past says little of its next patch


def _one_factorization(num_bands: int) -> list[tuple[tuple[int, int], ...]]:
    """The round-robin 1-factorization of the complete graph on `num_bands` (even) bands: `num_bands - 1` pairings
    that together hold every pair of bands exactly once."""
    last = num_bands - 1
    pairings = []
    for r in range(last):
        pairs = [(r, last)] + [tuple(sorted(((r + k) % last, (r - k) % last))) for k in range(1, num_bands // 2)]
        pairings.append(tuple(sorted(pairs)))
    return pairings


BAND_PAIRINGS: dict[str, tuple[tuple[int, int], ...]] = {
    f"pairing_{i + 1}": pairing for i, pairing in enumerate(_one_factorization(NUM_BANDS))
}
SOUND_EVENT_TYPES: tuple[str, ...] = tuple(BAND_PAIRINGS)
HUMAN_LABELS: dict[str, str] = {
    name: "Bands " + ", ".join(f"{a + 1}+{b + 1}" for a, b in pairing) + " sound together"
    for name, pairing in BAND_PAIRINGS.items()
}
TEXTURES = ("noise", "tones", "rattle")


# ---------------------------------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------------------------------


def _num_samples(duration: float, sampling_rate: int) -> int:
    return max(1, int(round(duration * sampling_rate)))


def band_edges(sampling_rate: int = 32000) -> np.ndarray:
    """`[NUM_BANDS, 2]` low/high frequencies (Hz) of the bands: equal steps of the Kaldi mel scale up to
    `min(15 kHz, 0.45 * sampling_rate)`, each band keeping 15 % of its step free on either side, so that at 32 kHz
    it stays inside one row of 16-mel-bin patches of the default front end."""
    top = 1127.0 * np.log1p(min(_TOP_HZ, 0.45 * sampling_rate) / 700.0)
    step = top / NUM_BANDS
    low_mel = np.arange(NUM_BANDS) * step + 0.15 * step
    mels = np.stack([low_mel, low_mel + 0.7 * step], axis=1)
    return 700.0 * np.expm1(mels / 1127.0)


def _fade(x: np.ndarray, sampling_rate: int, seconds: float) -> np.ndarray:
    """Raised-cosine fade-in and fade-out in place, so events start and end without clicks."""
    k = min(len(x) // 2, int(seconds * sampling_rate))
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k, endpoint=False))
        x[:k] *= ramp
        x[len(x) - k :] *= ramp[::-1]
    return x


def _band_noise(rng: np.random.Generator, n: int, low: float, high: float, sampling_rate: int) -> np.ndarray:
    """White noise restricted to `low..high` Hz in the frequency domain, unit RMS."""
    size = sp_fft.next_fast_len(n, real=True)
    spectrum = sp_fft.rfft(rng.standard_normal(size))
    freqs = sp_fft.rfftfreq(size, 1.0 / sampling_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    x = sp_fft.irfft(spectrum, size)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


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


def band_texture(
    rng: np.random.Generator, texture: str, n: int, low: float, high: float, sampling_rate: int
) -> np.ndarray:
    """`n` samples of one band's part of an event, confined to `low..high` Hz, unit RMS: `noise` (band-limited
    noise), `tones` (1-3 steady sinusoids at random frequencies of the band) or `rattle` (band noise gated by a
    pulse train of 6-30 Hz)."""
    t = np.arange(n) / sampling_rate
    if texture == "noise":
        x = _band_noise(rng, n, low, high, sampling_rate)
    elif texture == "tones":
        freqs = np.exp(rng.uniform(np.log(low), np.log(high), int(rng.integers(1, 4))))
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    elif texture == "rattle":
        rate, duty = np.exp(rng.uniform(np.log(6), np.log(30))), rng.uniform(0.2, 0.5)
        gate = ((t * rate + rng.uniform()) % 1.0) < duty
        x = _band_noise(rng, n, low, high, sampling_rate) * gate
    else:
        raise ValueError(f"Unknown texture {texture!r}; choose from {TEXTURES}.")
    x = np.asarray(x, dtype=np.float64)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------------------------------


def _video_id(index: int) -> str:
    return f"synth-{index:06d}"


def _schedule(rng: np.random.Generator, pairing, clip_seconds: float) -> list[dict]:
    """Events of a clip: each pair of the pairing sounds at least once, ~2.5 times a second, at random onsets, for
    60-160 ms."""
    events = []
    for pair in pairing:
        for _ in range(max(1, int(rng.poisson(_EVENTS_PER_PAIR_PER_SECOND * clip_seconds)))):
            duration = min(rng.uniform(*_EVENT_SECONDS), clip_seconds)
            onset = rng.uniform(0, clip_seconds - duration)
            levels = [round(float(v), 2) for v in rng.uniform(-9, 0, 2)]
            textures = [str(v) for v in rng.choice(TEXTURES, 2)]
            events.append(
                {
                    "bands": list(pair),
                    "onset": round(onset, 4),
                    "duration": round(duration, 4),
                    "levels_db": levels,
                    "textures": textures,
                }
            )
    return sorted(events, key=lambda e: (e["onset"], e["bands"]))


def synthesize_clip(
    index: int,
    seed: int = 0,
    clip_seconds: float = 10.0,
    sampling_rate: int = 32000,
    sound_class: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Generate clip `index` of the corpus with `seed`: a float32 waveform in [-1, 1] and its metadata.

    The clip depends only on its arguments. `sound_class` forces its class (default: one of `SOUND_EVENT_TYPES` drawn
    at random). Metadata: `video_id`, `labels` (`[class]`), `human_labels`, `label` (index of the class in
    `SOUND_EVENT_TYPES`), `snr_db` and `events` (bands, onset, duration, levels and textures of each event).
    """
    rng = np.random.default_rng([seed, index])
    n = _num_samples(clip_seconds, sampling_rate)
    drawn = SOUND_EVENT_TYPES[int(rng.integers(len(SOUND_EVENT_TYPES)))]
    sound_class = drawn if sound_class is None else sound_class
    if sound_class not in BAND_PAIRINGS:
        raise ValueError(f"Unknown class {sound_class!r}; choose from {SOUND_EVENT_TYPES}.")

    edges = band_edges(sampling_rate)
    events = _schedule(rng, BAND_PAIRINGS[sound_class], clip_seconds)
    foreground = np.zeros(n)
    active = np.zeros(n, dtype=bool)
    for event in events:
        start = min(int(round(event["onset"] * sampling_rate)), n - 1)
        m = min(_num_samples(event["duration"], sampling_rate), n - start)
        fade = rng.uniform(0.005, 0.03)
        for band, level, texture in zip(event["bands"], event["levels_db"], event["textures"]):
            wave = band_texture(rng, texture, m, *edges[band], sampling_rate) * 10 ** (level / 20)
            foreground[start : start + m] += _fade(wave, sampling_rate, fade)
        active[start : start + m] = True

    # SNR compares the events with the background while events sound, not over the whole clip.
    snr_db = float(rng.uniform(5, 20))
    event_power = np.mean(foreground[active] ** 2) if active.any() else 1.0
    background = _colored_noise(rng, n, exponent=rng.uniform(0.0, 1.5))
    mix = foreground + background * np.sqrt(event_power / 10 ** (snr_db / 10))
    # Peak-normalize to a random level (recordings differ in loudness) that always leaves headroom.
    mix *= 10 ** (rng.uniform(-12, -1) / 20) / (np.max(np.abs(mix)) + 1e-12)
    meta = {
        "video_id": _video_id(index),
        "labels": [sound_class],
        "human_labels": [HUMAN_LABELS[sound_class]],
        "label": SOUND_EVENT_TYPES.index(sound_class),
        "snr_db": snr_db,
        "events": events,
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
    """Build (or load from cache) the synthetic sound-events corpus as a `datasets.Dataset`.

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
