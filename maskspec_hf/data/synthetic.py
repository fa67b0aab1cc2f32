# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""A deterministic synthetic "sound events" corpus: the package's built-in default data.

Every clip is a mixture of 1-3 synthetic sound events over coloured background noise. The corpus is returned as a real
`datasets.Dataset` with an `Audio` column and AudioSet's columns (`video_id`, `audio`, `labels`, `human_labels`), so
it runs through the same code path as AudioSet from the Hub. Two extra columns serve single-label fine-tuning and
analysis: `label` (a `ClassLabel`, the event with the most energy) and `snr_db`.

A clip depends only on `(index, seed)` (and the clip length and sampling rate), so any clip can be regenerated on its
own and generation can be split across processes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, List, Value
from scipy import fft as sp_fft
from scipy import signal


# Bump whenever the generated audio or metadata changes, so stale caches are not reused.
GENERATOR_VERSION = 1
# Test clips are drawn from indices far above any training index, so the test split neither overlaps the training
# split nor changes when `num_train` does.
TEST_INDEX_OFFSET = 1_000_000

_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"


# ---------------------------------------------------------------------------------------------------------------------
# Signal helpers
# ---------------------------------------------------------------------------------------------------------------------


def _num_samples(duration: float, sampling_rate: int) -> int:
    return max(1, int(round(duration * sampling_rate)))


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _max_freq(sampling_rate: int) -> float:
    # Keep every component clearly below Nyquist, whatever the sampling rate.
    return 0.45 * sampling_rate


def _fade(x: np.ndarray, sampling_rate: int, attack: float, release: float) -> np.ndarray:
    """Apply raised-cosine fade-in/out (in seconds) in place, so events start and end without clicks."""
    n = len(x)
    k = min(n // 2, int(attack * sampling_rate))
    if k > 0:
        x[:k] *= 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k, endpoint=False))
    k = min(n // 2, int(release * sampling_rate))
    if k > 0:
        x[n - k :] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, k, endpoint=False) + np.pi / k)
    return x


def _bandpass(x: np.ndarray, low: float, high: float, sampling_rate: int, order: int = 4) -> np.ndarray:
    nyquist = sampling_rate / 2
    low = min(max(low, 20.0), 0.9 * nyquist)
    high = min(max(high, low * 1.1), 0.95 * nyquist)
    sos = signal.butter(order, [low, high], btype="bandpass", fs=sampling_rate, output="sos")
    return signal.sosfilt(sos, x)


def _lowpass(x: np.ndarray, cutoff: float, sampling_rate: int, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.45 * sampling_rate), btype="lowpass", fs=sampling_rate, output="sos")
    return signal.sosfilt(sos, x)


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    # Shape white noise in the frequency domain; a length with small prime factors keeps the FFT fast.
    size = sp_fft.next_fast_len(n, real=True)
    spectrum = sp_fft.rfft(rng.standard_normal(size))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0  # avoid dividing by zero; DC is removed below anyway
    spectrum *= freqs ** (-exponent / 2)
    spectrum[0] = 0.0
    noise = sp_fft.irfft(spectrum, size)[:n]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _phase(freq: np.ndarray | float, n: int, sampling_rate: int) -> np.ndarray:
    """Instantaneous phase of a (possibly time-varying) frequency track."""
    if np.isscalar(freq):
        return 2 * np.pi * float(freq) * np.arange(n) / sampling_rate
    return 2 * np.pi * np.cumsum(freq) / sampling_rate


def _harmonics(
    rng: np.random.Generator, phase: np.ndarray, f0_max: float, amplitudes: Sequence[float], sampling_rate: int
) -> np.ndarray:
    """Sum of harmonics k*phase with the given amplitudes (random phases), dropping those above Nyquist."""
    out = np.zeros_like(phase)
    for k, amp in enumerate(amplitudes, start=1):
        if k * f0_max >= _max_freq(sampling_rate):
            break
        out += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _smooth_noise(rng: np.random.Generator, n: int, sampling_rate: int, rate: float) -> np.ndarray:
    """Slowly varying random curve (unit-ish RMS) with changes about `rate` times per second."""
    knots = max(2, int(np.ceil(n / sampling_rate * rate)) + 2)
    return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), rng.standard_normal(knots))


# ---------------------------------------------------------------------------------------------------------------------
# Event generators: f(rng, duration, sampling_rate) -> float32 waveform of round(duration * sampling_rate) samples
# ---------------------------------------------------------------------------------------------------------------------


def harmonic_tone(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Steady harmonic tone: random f0, number of harmonics and spectral tilt."""
    n = _num_samples(duration, sampling_rate)
    f0 = _loguniform(rng, 110, 880)
    tilt_db = rng.uniform(1.0, 8.0)  # per harmonic
    amps = 10 ** (-tilt_db * np.arange(rng.integers(3, 13)) / 20)
    x = _harmonics(rng, _phase(f0, n, sampling_rate), f0, amps, sampling_rate)
    return _fade(x, sampling_rate, rng.uniform(0.01, 0.1), rng.uniform(0.05, 0.3)).astype(np.float32)


def _chirp(rng: np.random.Generator, duration: float, sampling_rate: int, upward: bool) -> np.ndarray:
    n = _num_samples(duration, sampling_rate)
    f_low = _loguniform(rng, 150, 1500)
    f_high = min(f_low * _loguniform(rng, 2.5, 10), 0.3 * sampling_rate)
    # Exponential sweep: frequency moves at a constant rate in octaves, as it looks on a mel axis.
    t = np.arange(n) / n
    freq = f_low * (f_high / f_low) ** (t if upward else 1 - t)
    amps = 10 ** (-rng.uniform(6, 20) * np.arange(rng.integers(1, 4)) / 20)
    x = _harmonics(rng, _phase(freq, n, sampling_rate), f_high, amps, sampling_rate)
    return _fade(x, sampling_rate, 0.02, 0.05).astype(np.float32)


def chirp_up(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Upward exponential frequency sweep with a few harmonics."""
    return _chirp(rng, duration, sampling_rate, upward=True)


def chirp_down(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Downward exponential frequency sweep with a few harmonics."""
    return _chirp(rng, duration, sampling_rate, upward=False)


def noise_burst(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """White or pink noise, band-pass filtered with a random band."""
    n = _num_samples(duration, sampling_rate)
    noise = _colored_noise(rng, n, exponent=float(rng.choice([0.0, 1.0])))
    center = _loguniform(rng, 300, 0.3 * sampling_rate)
    half_width = 2 ** (rng.uniform(0.5, 2.5) / 2)  # bandwidth in octaves
    x = _bandpass(noise, center / half_width, center * half_width, sampling_rate)
    return _fade(x, sampling_rate, rng.uniform(0.005, 0.05), rng.uniform(0.02, 0.2)).astype(np.float32)


def click_train(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Regular train of short broadband clicks at a random rate (ticking, clapping, rattling)."""
    n = _num_samples(duration, sampling_rate)
    rate = _loguniform(rng, 3, 40)
    period = sampling_rate / rate
    jitter = rng.uniform(0.0, 0.15)
    times = np.cumsum(period * (1 + jitter * rng.uniform(-1, 1, int(n / period) + 2)))
    times = times[times < n].astype(int)
    impulses = np.zeros(n)
    impulses[times] = rng.uniform(0.6, 1.0, len(times))
    # Every click is the same short, exponentially decaying, band-limited noise burst.
    k = max(8, int(rng.uniform(0.001, 0.004) * sampling_rate))
    kernel = rng.standard_normal(k) * np.exp(-np.arange(k) / (k / 4))
    low = _loguniform(rng, 500, 4000)
    kernel = _bandpass(np.pad(kernel, (0, k)), low, low * _loguniform(rng, 2, 6), sampling_rate, order=2)
    x = signal.oaconvolve(impulses, kernel)[:n]
    return x.astype(np.float32)


def am_tone(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Pure tone with deep sinusoidal amplitude modulation (tremolo, beating)."""
    n = _num_samples(duration, sampling_rate)
    carrier = _loguniform(rng, 250, 4000)
    rate, depth = _loguniform(rng, 2, 20), rng.uniform(0.6, 1.0)
    t = np.arange(n) / sampling_rate
    envelope = 1 - depth / 2 * (1 - np.cos(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    x = envelope * np.sin(_phase(carrier, n, sampling_rate))
    return _fade(x, sampling_rate, 0.02, 0.05).astype(np.float32)


def fm_tone(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Harmonic tone with vibrato (sinusoidal frequency modulation)."""
    n = _num_samples(duration, sampling_rate)
    f0 = _loguniform(rng, 250, 2500)
    rate, depth = rng.uniform(3, 9), rng.uniform(0.03, 0.12)
    t = np.arange(n) / sampling_rate
    freq = f0 * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    amps = 10 ** (-rng.uniform(4, 12) * np.arange(rng.integers(2, 6)) / 20)
    x = _harmonics(rng, _phase(freq, n, sampling_rate), f0 * (1 + depth), amps, sampling_rate)
    return _fade(x, sampling_rate, rng.uniform(0.02, 0.1), rng.uniform(0.05, 0.3)).astype(np.float32)


def percussive(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Drum-like hits: damped sinusoids with a downward pitch glide plus a noisy attack."""
    n = _num_samples(duration, sampling_rate)
    x = np.zeros(n)
    num_hits = int(rng.integers(1, 2 + int(duration * 2)))
    onsets = np.sort(np.concatenate([[0], rng.integers(0, n, num_hits - 1)]))
    f_start, glide = _loguniform(rng, 50, 300), rng.uniform(0.4, 0.9)
    tau = rng.uniform(0.05, 0.4)
    noise_tau, noise_mix = rng.uniform(0.005, 0.03), rng.uniform(0.2, 1.0)
    noise_low = _loguniform(rng, 500, 3000)
    for onset in onsets:
        m = min(n - onset, int(6 * tau * sampling_rate))
        t = np.arange(m) / sampling_rate
        freq = f_start * (glide + (1 - glide) * np.exp(-t / (tau / 2)))
        body = np.sin(_phase(freq, m, sampling_rate)) * np.exp(-t / tau)
        noise = _bandpass(rng.standard_normal(m), noise_low, 4 * noise_low, sampling_rate, order=2)
        x[onset : onset + m] += rng.uniform(0.5, 1.0) * (body + noise_mix * noise * np.exp(-t / noise_tau))
    return x.astype(np.float32)


def bird(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Bird-like song: a sequence of short, fast, high frequency sweeps separated by gaps."""
    n = _num_samples(duration, sampling_rate)
    f_min, f_max = 1500.0, min(8000.0, 0.4 * sampling_rate)
    freq = np.full(n, f_min)
    amp = np.zeros(n)
    pos = int(rng.uniform(0, 0.1) * sampling_rate)
    # One bird repeats a few syllable shapes, which makes the song recognisable as a pattern.
    shapes = [(_loguniform(rng, f_min, f_max), _loguniform(rng, f_min, f_max)) for _ in range(rng.integers(1, 4))]
    syllable_range = sorted(rng.uniform(0.02, 0.15, 2))
    gap_range = sorted(rng.uniform(0.02, 0.25, 2))
    while pos < n:
        m = min(n - pos, int(rng.uniform(*syllable_range) * sampling_rate) + 1)
        f_a, f_b = shapes[rng.integers(len(shapes))]
        t = np.linspace(0, 1, m)
        freq[pos : pos + m] = f_a + (f_b - f_a) * t + rng.uniform(-0.2, 0.2) * f_a * np.sin(np.pi * t)
        amp[pos : pos + m] = np.sin(np.pi * t) * rng.uniform(0.5, 1.0)
        pos += m + int(rng.uniform(*gap_range) * sampling_rate)
    x = amp * np.sin(_phase(np.clip(freq, 100, _max_freq(sampling_rate)), n, sampling_rate))
    return x.astype(np.float32)


def engine(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Engine-like low-frequency harmonic buzz whose firing rate wanders (rate jitter)."""
    n = _num_samples(duration, sampling_rate)
    f0 = _loguniform(rng, 25, 90)
    jitter = rng.uniform(0.03, 0.12)
    freq = f0 * (1 + jitter * _smooth_noise(rng, n, sampling_rate, rate=rng.uniform(0.5, 3)))
    freq *= 1 + 0.02 * rng.standard_normal(n).cumsum() / np.sqrt(n)  # slow drift
    cycles = _phase(freq, n, sampling_rate) / (2 * np.pi)
    # Pulse-like source (a sharpened sawtooth) through a low-pass "exhaust" filter.
    x = (cycles % 1.0) ** rng.uniform(1.0, 4.0)
    x = _lowpass(x - x.mean(), _loguniform(rng, 250, 1500), sampling_rate)
    x += rng.uniform(0.0, 0.3) * np.std(x) * _lowpass(rng.standard_normal(n), 800, sampling_rate, order=2)
    return _fade(x, sampling_rate, rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)).astype(np.float32)


def siren(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Two-tone alarm: a square-ish tone alternating between two pitches."""
    n = _num_samples(duration, sampling_rate)
    f_low = _loguniform(rng, 400, 1200)
    f_high = f_low * rng.uniform(1.15, 1.5)
    half_period = rng.uniform(0.12, 0.6) * sampling_rate
    high = ((np.arange(n) + rng.uniform(0, 2 * half_period)) // half_period) % 2 == 1
    freq = np.where(high, f_high, f_low)
    amps = 1 / np.arange(1, 2 * rng.integers(2, 5), 2)  # odd harmonics: square-like timbre
    phase = _phase(freq, n, sampling_rate)
    x = np.zeros(n)
    for k, amp in zip(range(1, 2 * len(amps), 2), amps):
        if k * f_high < _max_freq(sampling_rate):
            x += amp * np.sin(k * phase)
    return _fade(x, sampling_rate, 0.02, 0.05).astype(np.float32)


# Formant frequencies (F1, F2, F3 in Hz) of a few vowels.
_VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]])


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sampling_rate: int) -> np.ndarray:
    """Two-pole resonator (one formant); cheaper to design than a general filter."""
    r = np.exp(-np.pi * bandwidth / sampling_rate)
    theta = 2 * np.pi * freq / sampling_rate
    return signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def speech_babble(rng: np.random.Generator, duration: float, sampling_rate: int) -> np.ndarray:
    """Speech-like babble: 1-2 talkers of formant-filtered glottal pulse trains with syllabic rhythm."""
    n = _num_samples(duration, sampling_rate)
    out = np.zeros(n)
    for _ in range(rng.integers(1, 3)):
        f0 = _loguniform(rng, 90, 250)
        # Intonation: slow random pitch contour of +-15%.
        freq = f0 * (1 + 0.15 * np.tanh(_smooth_noise(rng, n, sampling_rate, rate=2)))
        cycles = _phase(freq, n, sampling_rate) / (2 * np.pi)
        source = np.diff(np.floor(cycles), prepend=0.0)  # one impulse per glottal cycle
        source = signal.lfilter([1.0], [1.0, -0.9], source)  # glottal roll-off
        pos = int(rng.uniform(0, 0.2) * sampling_rate)
        while pos < n:
            m = min(n - pos, int(rng.uniform(0.08, 0.3) * sampling_rate) + 1)
            formants = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.85, 1.2)
            segment = source[pos : pos + m]
            voiced = sum(
                _resonator(segment, f, bw, sampling_rate) * g
                for f, bw, g in zip(formants, (80, 100, 150), (1.0, 0.6, 0.3))
                if f < _max_freq(sampling_rate)
            )
            out[pos : pos + m] += voiced * np.hanning(m) * rng.uniform(0.4, 1.0)
            # Syllables are followed by short pauses, longer ones now and then.
            pos += m + int(rng.choice([rng.uniform(0.0, 0.08), rng.uniform(0.15, 0.5)], p=[0.8, 0.2]) * sampling_rate)
    return out.astype(np.float32)


EVENT_GENERATORS: dict[str, Callable[[np.random.Generator, float, int], np.ndarray]] = {
    "harmonic_tone": harmonic_tone,
    "chirp_up": chirp_up,
    "chirp_down": chirp_down,
    "noise_burst": noise_burst,
    "click_train": click_train,
    "am_tone": am_tone,
    "fm_tone": fm_tone,
    "percussive": percussive,
    "bird": bird,
    "engine": engine,
    "siren": siren,
    "speech_babble": speech_babble,
}
SOUND_EVENT_TYPES: tuple[str, ...] = tuple(EVENT_GENERATORS)
HUMAN_LABELS: dict[str, str] = {
    "harmonic_tone": "Harmonic tone",
    "chirp_up": "Upward chirp",
    "chirp_down": "Downward chirp",
    "noise_burst": "Noise burst",
    "click_train": "Click train",
    "am_tone": "Amplitude-modulated tone",
    "fm_tone": "Vibrato tone",
    "percussive": "Percussion",
    "bird": "Bird song",
    "engine": "Engine",
    "siren": "Two-tone siren",
    "speech_babble": "Speech babble",
}


# ---------------------------------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------------------------------


def _video_id(index: int) -> str:
    return f"synth-{index:06d}"


def synthesize_clip(
    index: int,
    seed: int = 0,
    clip_seconds: float = 10.0,
    sampling_rate: int = 32000,
    event_types: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict]:
    """Generate clip `index` of the corpus with `seed`: a float32 waveform in [-1, 1] and its metadata.

    The clip depends only on its arguments. `event_types` forces which events it contains (default: 1-3 distinct types
    drawn at random). Metadata: `video_id`, `labels` (sorted event names), `human_labels`, `label` (index into
    `SOUND_EVENT_TYPES` of the event with the most energy), `snr_db` and `events` (type, onset, duration, level).
    """
    rng = np.random.default_rng([seed, index])
    n = _num_samples(clip_seconds, sampling_rate)
    if event_types is None:
        count = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
        event_types = [SOUND_EVENT_TYPES[i] for i in rng.choice(len(SOUND_EVENT_TYPES), count, replace=False)]
    unknown = set(event_types) - set(SOUND_EVENT_TYPES)
    if unknown:
        raise ValueError(f"Unknown event types {sorted(unknown)}; choose from {SOUND_EVENT_TYPES}.")

    foreground = np.zeros(n)
    active = np.zeros(n, dtype=bool)
    events, energies = [], []
    min_duration = min(0.5, 0.5 * clip_seconds)
    for name in event_types:
        duration = rng.uniform(min_duration, 0.8 * clip_seconds)
        onset = rng.uniform(0, clip_seconds - duration)
        level_db = rng.uniform(-10, 0)
        wave = EVENT_GENERATORS[name](rng, duration, sampling_rate).astype(np.float64)
        # Events are set to a given RMS level so `level_db` means the same for every type.
        wave *= 10 ** (level_db / 20) / (np.sqrt(np.mean(wave**2)) + 1e-12)
        start = min(int(round(onset * sampling_rate)), n - 1)
        wave = wave[: n - start]
        foreground[start : start + len(wave)] += wave
        active[start : start + len(wave)] = True
        energies.append(float(np.sum(wave**2)))
        events.append({"type": name, "onset": round(onset, 4), "duration": round(duration, 4), "level_db": level_db})

    # SNR compares the events with the background while events sound, not over the whole clip: a short event in a
    # long clip should not be buried because the rest of the clip is silent.
    snr_db = float(rng.uniform(0, 20))
    event_power = np.mean(foreground[active] ** 2) if active.any() else 1.0
    background = _colored_noise(rng, n, exponent=rng.uniform(1.0, 2.0))  # between pink and brown
    mix = foreground + background * np.sqrt(event_power / 10 ** (snr_db / 10))
    # Peak-normalize to a random level (recordings differ in loudness) that always leaves headroom.
    mix *= 10 ** (rng.uniform(-12, -1) / 20) / (np.max(np.abs(mix)) + 1e-12)

    labels = sorted(event_types)
    dominant = event_types[int(np.argmax(energies))]
    meta = {
        "video_id": _video_id(index),
        "labels": labels,
        "human_labels": [HUMAN_LABELS[name] for name in labels],
        "label": SOUND_EVENT_TYPES.index(dominant),
        "snr_db": snr_db,
        "events": events,
    }
    return mix.astype(np.float32), meta


# ---------------------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """`$MASKSPEC_HF_CACHE/synthetic`, else `~/.cache/maskspec_hf/synthetic` (following `$XDG_CACHE_HOME`)."""
    if "MASKSPEC_HF_CACHE" in os.environ:
        return Path(os.environ["MASKSPEC_HF_CACHE"]) / "synthetic"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskspec_hf" / "synthetic"


def _write_clips(directory: str, indices: Sequence[int], seed: int, clip_seconds: float, sampling_rate: int) -> list:
    """Worker: write the clips `indices` as 16-bit WAV files into `directory` and return their metadata."""
    metas = []
    for index in indices:
        wave, meta = synthesize_clip(index, seed, clip_seconds, sampling_rate)
        # Encode in memory: writing through libsndfile directly fsyncs every file, which makes the disk the bottleneck.
        buffer = io.BytesIO()
        sf.write(buffer, wave, sampling_rate, format="WAV", subtype="PCM_16")
        Path(directory, f"{meta['video_id']}.wav").write_bytes(buffer.getbuffer())
        metas.append(meta)
    return metas


def _read_manifest(directory: Path, params: dict) -> dict | None:
    """The manifest of a complete cache folder with these parameters, else None."""
    try:
        manifest = json.loads((directory / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("params") != params:
        return None
    if not all((directory / f"{clip['video_id']}.wav").is_file() for clip in manifest["clips"]):
        return None
    return manifest


def _default_num_proc(num_clips: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # Starting workers costs more than a few dozen clips take to generate.
    return max(1, min(cpus, 8, num_clips // 32))


def _generate(directory: Path, params: dict, indices: list[int], num_proc: int) -> None:
    """Write all clips and then the manifest (last, so its presence means the folder is complete)."""
    write = functools.partial(
        _write_clips,
        str(directory),
        seed=params["seed"],
        clip_seconds=params["clip_seconds"],
        sampling_rate=params["sampling_rate"],
    )
    if num_proc <= 1:
        metas = write(indices)
    else:
        # Several chunks per worker keep the load balanced; fork avoids re-importing the package in every worker.
        chunk = max(1, -(-len(indices) // (4 * num_proc)))
        chunks = [indices[i : i + chunk] for i in range(0, len(indices), chunk)]
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(num_proc, mp_context=context) as pool:
            metas = [meta for result in pool.map(write, chunks) for meta in result]
    manifest = {"params": params, "clips": metas}
    (directory / _MANIFEST).write_text(json.dumps(manifest))


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
    plus `label` (`ClassLabel` over `SOUND_EVENT_TYPES`, the dominant event) and `snr_db`.
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
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / f"sound-events-{key}"

    manifest = _read_manifest(directory, params)
    if manifest is None:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"{_TMP_PREFIX}{directory.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            indices = list(range(start_index, start_index + num_clips))
            _generate(tmp, params, indices, num_proc if num_proc is not None else _default_num_proc(num_clips))
            if directory.exists() and _read_manifest(directory, params) is None:
                shutil.rmtree(directory, ignore_errors=True)  # damaged or from an older version of this module
            try:
                os.replace(tmp, directory)
            except OSError:
                pass  # another process finished the same corpus first; its folder is just as good
            manifest = _read_manifest(directory, params)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if manifest is None:
            raise RuntimeError(f"Could not write the synthetic corpus to {directory}.")

    clips = manifest["clips"]
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
