# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Real-audio benchmark data built only from Debian packages: a pre-training corpus and two labeled tasks.

Nothing is downloaded except Debian packages (see `ensure_system_packages`). All audio is 32 kHz mono 16-bit WAV.

* **Task A, `keywords`** (`build_keyword_task`): 10-way spoken-keyword classification ("yes", "no", "up", "down",
  "left", "right", "on", "off", "stop", "go", as in Speech Commands), 1 s clips spoken by many synthetic voices:
  espeak-ng (English accents and other languages' voices reading English, times espeak-ng's voice variants) plus the
  flite and festival voices (diphone, clustergen and HTS voices trained on recordings of real people). Train and test
  are split by voice: the test split uses espeak-ng base voices *and* variants that the train split never uses, and
  flite/festival speakers (awb, slt) that the train split never uses.
* **Task B, `instruments`** (`build_instrument_task`): 10-way instrument-family classification (the first ten General
  MIDI families: piano ... pipe) of 2 s phrases rendered from MIDI. Train uses four sources (the FluidR3_GM,
  MuseScore_General_Lite and OPL3 FM soundfonts through fluidsynth, the freepats patch set through TiMidity++) and 6
  of the 8 GM programs of each family; test uses two other soundfonts (TimGM6mb and Csound's sf_GMbank) and the 2
  remaining programs of each family, so test instruments are unseen twice over (source and program).
* **Pre-training corpus** (`build_pretraining_corpus`): unlabeled 3 s clips mixing espeak-ng/flite/festival sentences
  (train voices only, text with the ten keywords removed), real human speech (Asterisk's English, Spanish and French
  prompts), random multi-instrument MIDI rendered from the train sources only (test programs excluded), real
  recorded music (Asterisk music-on-hold) and real game sound effects (UFO: Alien Invasion, Word War vi). No labeled
  test audio and no test voice, soundfont or program is used; `assert_no_test_leakage` checks it (sources and hashes).

Every builder is deterministic given its arguments (clips depend on the seed and a job index only, not on the number
of worker processes), generates in a process pool (2 workers by default), and caches its output under a folder of
`out_dir`: files are written into a temporary folder which is renamed when complete, and a `manifest.json` written last
records the parameters, so a later call with the same parameters just loads the cache. Each split folder also has a
`metadata.csv`, so `datasets.load_dataset("audiofolder", data_dir=...)` works too.

CLI: `python benchmarks/real_audio.py --out_dir DIR [--num_pretrain N] [--seed S] [--baseline]`.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


SAMPLING_RATE = 32000
# Bump whenever generated audio or metadata changes, so stale caches are rebuilt.
GENERATOR_VERSION = 1
_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"

# ---------------------------------------------------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------------------------------------------------

ESPEAK_VOICE_DIR = "/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"
SOUNDFONTS = {
    "FluidR3_GM": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "MuseScore_General_Lite": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "TimGM6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "sf_GMbank": "/usr/share/sounds/sf2/sf_GMbank.sf2",
    "OPL3_FM": "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2",
}
FREEPATS_CFG = "/etc/timidity/freepats.cfg"
# GM programs (0-based, bank 0) that freepats defines; TiMidity++ would substitute another patch for the others.
FREEPATS_PROGRAMS = (
    0, 1, 2, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 19, 21, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 34, 35, 36, 37, 38, 40,
    42, 44, 45, 46, 47, 48, 53, 56, 57, 58, 59, 60, 61, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 79, 80, 84,
    88, 94, 95, 98, 101, 102, 104, 114, 115, 120, 122, 125,
)  # fmt: skip
ASTERISK_SPEECH = {
    "en": "/usr/share/asterisk/sounds/en_US_f_Allison",
    "es": "/usr/share/asterisk/sounds/es_MX_f_Allison",
    "fr": "/usr/share/asterisk/sounds/fr_CA_f_June",
}
ASTERISK_MOH = "/usr/share/asterisk/moh"
UFOAI_PK3 = "/usr/share/games/ufoai/base/0snd.pk3"
WORDWARVI_DIR = "/usr/share/wordwarvi/sounds"

# (Debian package, a binary on PATH or a path it installs). All are in Debian main (bookworm).
SYSTEM_REQUIREMENTS = [
    ("espeak-ng", "espeak-ng"),
    ("flite", "flite"),
    ("festival", "festival"),
    ("festvox-kallpc16k", "/usr/share/festival/voices/english/kal_diphone"),
    ("festvox-kdlpc16k", "/usr/share/festival/voices/english/ked_diphone"),
    ("festvox-us-slt-hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
    ("fluidsynth", "fluidsynth"),
    ("fluid-soundfont-gm", SOUNDFONTS["FluidR3_GM"]),
    ("musescore-general-soundfont-small", SOUNDFONTS["MuseScore_General_Lite"]),
    ("timgm6mb-soundfont", SOUNDFONTS["TimGM6mb"]),
    ("csound-soundfont", SOUNDFONTS["sf_GMbank"]),
    ("opl3-soundfont", SOUNDFONTS["OPL3_FM"]),
    ("timidity", "timidity"),
    ("freepats", FREEPATS_CFG),
    ("asterisk-core-sounds-en-wav", ASTERISK_SPEECH["en"]),
    ("asterisk-core-sounds-es-wav", ASTERISK_SPEECH["es"]),
    ("asterisk-core-sounds-fr-wav", ASTERISK_SPEECH["fr"]),
    ("asterisk-moh-opsound-wav", ASTERISK_MOH),
    ("ufoai-sound", UFOAI_PK3),
    ("wordwarvi-sound", WORDWARVI_DIR),
]


def _present(check: str) -> bool:
    return os.path.exists(check) if check.startswith("/") else shutil.which(check) is not None


def missing_system_packages(requirements=SYSTEM_REQUIREMENTS) -> list[str]:
    """The Debian packages of `requirements` ((package, binary or path) pairs) whose binary or file is missing."""
    return sorted({package for package, check in requirements if not _present(check)})


def ensure_system_packages(install: bool = True, verbose: bool = True, requirements=SYSTEM_REQUIREMENTS) -> list[str]:
    """Check that the binaries and data files the builders need (`requirements`: (Debian package, binary or path)
    pairs) exist; install missing packages with apt-get.

    Runs `apt-get update` and `apt-get install -y --no-install-recommends PACKAGES` (as root, or through sudo when not
    root), printing what it does. Returns the list of packages it installed (empty when all were there). Raises
    `RuntimeError` when something is still missing (or `install=False` and something is missing).
    """
    missing = missing_system_packages(requirements)
    if not missing:
        if verbose:
            print(f"[real_audio] system packages: all {len(requirements)} requirements present")
        return []
    if not install:
        raise RuntimeError(f"missing Debian packages: {' '.join(missing)} (apt-get install -y {' '.join(missing)})")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    start = time.time()
    for command in (
        prefix + ["apt-get", "update", "-q"],
        prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        if verbose:
            print(f"[real_audio] running: {' '.join(command)}", flush=True)
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    still = missing_system_packages(requirements)
    if still:
        raise RuntimeError(f"still missing after apt-get install: {' '.join(still)}")
    if verbose:
        print(f"[real_audio] installed {len(missing)} packages in {time.time() - start:.1f} s")
    return missing


# ---------------------------------------------------------------------------------------------------------------------
# Task definitions and source splits (fixed: they do not depend on the seed, so test sources are always the same)
# ---------------------------------------------------------------------------------------------------------------------

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

# espeak-ng base voices reading the English keywords: English accents and Latin-script languages (foreign accents).
ESPEAK_ENGLISH_TRAIN = ("en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd")
ESPEAK_ENGLISH_TEST = ("en-us-nyc", "en-gb-scotland", "en-gb-x-gbclan")
ESPEAK_FOREIGN_TRAIN = (
    "af", "ca", "cs", "da", "de", "eo", "es", "et", "fi", "fr-fr", "hr", "hu", "id", "it", "lv", "nb", "nl", "pl",
    "pt-br", "ro", "sk", "sv", "tr",
)  # fmt: skip
ESPEAK_FOREIGN_TEST = ("cy", "es-419", "eu", "fr-be", "ga", "is", "lt", "ms", "mt", "pt", "sl", "sq", "sw")
# espeak-ng voice variants (files of espeak-ng-data/voices/!v; "fast" and "Mr serious" left out). Test variants are
# those whose md5 is 0 mod 3 (a fixed ~1/3), see `espeak_variant_split`.
ESPEAK_VARIANTS = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis", "Diogo", "Gene", "Gene2",
    "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "Storm", "Tweaky", "UniRobot", "adam", "anika", "anikaRobot", "announcer", "antonio", "aunty",
    "belinda", "benjamin", "boris", "caleb", "croak", "david", "ed", "edward", "edward2", "f1", "f2", "f3", "f4", "f5",
    "grandma", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "klatt", "klatt2",
    "klatt3", "klatt4", "klatt5", "klatt6", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max",
    "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "robosoft",
    "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "sandro", "shelby",
    "steph", "steph2", "steph3", "travis", "victor", "whisper", "whisperf", "zac",
)  # fmt: skip

# flite / festival voices -> the real person the voice was built from ("group"): a group is entirely train or test.
TTS_VOICES = {
    "flite:kal": "kal",
    "flite:kal16": "kal",
    "festival:kal_diphone": "kal",
    "festival:ked_diphone": "ked",
    "flite:rms": "rms",
    "flite:awb": "awb",
    "flite:slt": "slt",
    "festival:cmu_us_slt_arctic_hts": "slt",
}
TTS_GROUPS_TEST = ("awb", "slt")

INSTRUMENT_FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed", "pipe",
)  # fmt: skip
# General MIDI programs (0-based) held out for the test split: two of the eight programs of each family.
INSTRUMENT_TEST_PROGRAMS = (3, 7, 11, 14, 19, 22, 25, 30, 35, 38, 41, 46, 49, 53, 57, 61, 66, 71, 73, 77)
# Rough MIDI pitch range of each family (low, high).
_FAMILY_PITCH = ((36, 96), (60, 96), (36, 84), (40, 76), (28, 55), (40, 84), (40, 84), (40, 77), (45, 81), (60, 96))
# Narrower, realistic ranges for instruments whose samples do not cover their family's range.
_PROGRAM_PITCH = {
    9: (72, 100), 10: (60, 96), 11: (53, 89), 12: (45, 91), 13: (65, 100), 14: (60, 77), 15: (48, 84),
    40: (55, 92), 41: (48, 84), 42: (36, 72), 43: (28, 55), 45: (40, 84), 46: (36, 96), 47: (40, 55),
    56: (55, 82), 57: (40, 72), 58: (28, 58), 59: (55, 82), 60: (41, 77), 64: (56, 87), 65: (49, 80),
    66: (44, 75), 67: (36, 68), 68: (58, 91), 69: (52, 81), 70: (34, 70), 71: (50, 89), 72: (74, 100),
    73: (60, 96), 74: (60, 96), 75: (60, 90), 76: (60, 84), 77: (55, 84), 78: (64, 78), 79: (60, 90),
}  # fmt: skip


def _pitch_range(program: int) -> tuple[int, int]:
    return _PROGRAM_PITCH.get(program, _FAMILY_PITCH[program // 8])


# Instrument sources: soundfonts rendered by fluidsynth, and the freepats patch set rendered by TiMidity++.
# FluidR3_GM and MuseScore_General (derived from FluidR3) share samples, and so do TimGM6mb and Csound's sf_GMbank:
# each related pair is kept on one side of the split.
SOUNDFONTS_TRAIN = ("FluidR3_GM", "MuseScore_General_Lite", "OPL3_FM", "freepats")
SOUNDFONTS_TEST = ("TimGM6mb", "sf_GMbank")
# freepats programs left out of the instrument task: too quiet over much of their range (xylophone, harp).
_FREEPATS_QUIET = (13, 46)


def source_programs(source: str) -> tuple[int, ...]:
    """GM programs (0-based) that an instrument source can render: all 128, or those freepats defines."""
    if source == "freepats":
        return tuple(p for p in FREEPATS_PROGRAMS if p not in _FREEPATS_QUIET)
    return tuple(range(128))


GM_PROGRAM_NAMES = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano", "Electric Piano 1",
    "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba",
    "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello",
    "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs", "Synth Voice",
    "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2", "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet", "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
)  # fmt: skip


def espeak_variant_split() -> dict[str, tuple[str, ...]]:
    """The fixed train/test split of `ESPEAK_VARIANTS`: a variant is test when md5(name) is 0 mod 3."""
    test = tuple(v for v in ESPEAK_VARIANTS if int(hashlib.md5(v.encode()).hexdigest(), 16) % 3 == 0)
    return {"train": tuple(v for v in ESPEAK_VARIANTS if v not in test), "test": test}


def keyword_test_sources() -> dict[str, set[str]]:
    """Voices of the keyword test split: espeak base voices and variants, and flite/festival voices."""
    return {
        "espeak_base": set(ESPEAK_ENGLISH_TEST + ESPEAK_FOREIGN_TEST),
        "espeak_variant": set(espeak_variant_split()["test"]),
        "tts_voice": {v for v, g in TTS_VOICES.items() if g in TTS_GROUPS_TEST},
    }


def _instrument_programs(split: str) -> list[int]:
    programs = range(8 * len(INSTRUMENT_FAMILIES))
    if split == "test":
        return [p for p in programs if p in INSTRUMENT_TEST_PROGRAMS]
    return [p for p in programs if p not in INSTRUMENT_TEST_PROGRAMS]


# ---------------------------------------------------------------------------------------------------------------------
# Signal helpers
# ---------------------------------------------------------------------------------------------------------------------


def _rng(seed: int, *keys) -> np.random.Generator:
    """An independent generator for (seed, keys...); keys may be strings."""
    words = [int(seed)]
    for key in keys:
        words.append(int(hashlib.md5(str(key).encode()).hexdigest()[:8], 16) if isinstance(key, str) else int(key))
    return np.random.default_rng(words)


def _to_mono(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        x = x[:, 0] if x.shape[1] == 1 else x.sum(axis=1, dtype=np.float32) / np.float32(x.shape[1])
    return x.astype(np.float32, copy=False)


def _resample(x: np.ndarray, rate_in: float, rate_out: int = SAMPLING_RATE) -> np.ndarray:
    """Resample; a fractional `rate_in` implements speed perturbation (pitch, formants and duration together)."""
    if abs(rate_in - rate_out) < 1e-6 or len(x) == 0:
        return x.astype(np.float32)
    return soxr.resample(x.astype(np.float32), rate_in, rate_out).astype(np.float32)


def _read_audio(source, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Read a file (path or bytes) as mono float32 at 32 kHz, optionally a window [start, start + duration) in s."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    with sf.SoundFile(source) as f:
        rate = f.samplerate
        f.seek(min(int(start * rate), max(f.frames - 1, 0)))
        x = f.read(-1 if duration is None else int(np.ceil(duration * rate)), dtype="float32", always_2d=True)
    return _resample(_to_mono(x), rate)


def _trim(x: np.ndarray, threshold_db: float = -45.0, frame: int = 320) -> np.ndarray:
    """Strip leading/trailing frames quieter than `threshold_db` below the peak frame."""
    n = len(x) // frame
    if n == 0:
        return x
    energy = (x[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    active = np.flatnonzero(energy > energy.max() * 10 ** (threshold_db / 10))
    return x[active[0] * frame : (active[-1] + 1) * frame] if len(active) else x


def _fade(x: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    k = min(len(x) // 2, int(seconds * SAMPLING_RATE))
    if k > 0:
        ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
        x[:k] *= ramp
        x[len(x) - k :] *= ramp[::-1]
    return x


def _place(x: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Put `x` at a random offset of a silent clip of `num_samples` (random crop + fades if it is longer)."""
    out = np.zeros(num_samples, dtype=np.float32)
    if len(x) >= num_samples:
        start = int(rng.integers(0, len(x) - num_samples + 1))
        out[:] = _fade(x[start : start + num_samples].copy())
    else:
        start = int(rng.integers(0, num_samples - len(x) + 1))
        out[start : start + len(x)] = x
    return out


def _set_peak(x: np.ndarray, rng: np.random.Generator, low_db: float = -20.0, high_db: float = -1.0) -> np.ndarray:
    peak = float(np.abs(x).max())
    if peak < 1e-7:
        return x
    return (x * (10 ** (rng.uniform(low_db, high_db) / 20) / peak)).astype(np.float32)


def _write_wav(directory: str, relpath: str, x: np.ndarray) -> dict:
    """Write 16-bit WAV; return {file, sha1 (of the PCM), seconds}."""
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    path = os.path.join(directory, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, pcm, SAMPLING_RATE, subtype="PCM_16")
    return {"file": relpath, "sha1": hashlib.sha1(pcm.tobytes()).hexdigest(), "seconds": len(pcm) / SAMPLING_RATE}


def _is_silent(x: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) < 1e-4


# ---------------------------------------------------------------------------------------------------------------------
# Speech synthesis
# ---------------------------------------------------------------------------------------------------------------------


def _espeak(text: str, voice: str, speed: float, pitch: float, ssml: bool = False) -> tuple[np.ndarray, int]:
    command = ["espeak-ng", "-v", voice, "-s", str(int(round(speed))), "-p", str(int(round(pitch))), "--stdout"]
    # The text goes through stdin, so a text starting with "-" is not taken for an option.
    out = subprocess.run(command + (["-m"] if ssml else []), input=text.encode(), capture_output=True, check=True)
    x, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    return x, rate


def _split_on_pauses(x: np.ndarray, rate: int, min_pause: float = 0.5, threshold_db: float = -50.0) -> list:
    """Split a waveform into the segments separated by pauses of at least `min_pause` seconds."""
    hop = max(1, rate // 100)
    n = len(x) // hop
    energy = (x[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
    active = np.flatnonzero(energy > energy.max() * 10 ** (threshold_db / 10))
    if len(active) == 0:
        return []
    breaks = np.flatnonzero(np.diff(active) > min_pause * 100)
    starts = np.concatenate([[active[0]], active[breaks + 1]])
    ends = np.concatenate([active[breaks], [active[-1]]]) + 1
    return [x[a * hop : b * hop] for a, b in zip(starts, ends)]


def _espeak_words(words, voice: str, speed: float, pitch: float, rng: np.random.Generator) -> list:
    """Speak each word (with a small random rate and pitch change) in one espeak-ng run (SSML with 1.2 s breaks),
    split at the breaks; falls back to one run per word if the split does not give one segment per word."""
    rates = rng.uniform(92, 108, len(words))
    pitches = rng.uniform(88, 112, len(words))
    body = "".join(f'<prosody rate="{r:.0f}%" pitch="{p:.0f}%">{w}</prosody><break time="1200ms"/>'
                   for w, r, p in zip(words, rates, pitches))  # fmt: skip
    x, rate = _espeak(f"<speak>{body}</speak>", voice, speed, pitch, ssml=True)
    segments = _split_on_pauses(x, rate)
    if len(segments) != len(words):
        segments = [_espeak(w, voice, speed * r / 100, pitch * p / 100)[0] for w, r, p in zip(words, rates, pitches)]
    return [(segment, rate) for segment in segments]


def _flite(text: str, voice: str, stretch: float, f0: float | None, tmpdir: str) -> tuple[np.ndarray, int]:
    path = os.path.join(tmpdir, f"flite-{uuid.uuid4().hex}.wav")
    command = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
    if f0 is not None:
        command += ["--setf", f"int_f0_target_mean={f0:.1f}"]
    subprocess.run(command + ["-t", text, "-o", path], capture_output=True, check=True)
    x, rate = sf.read(path, dtype="float32")
    os.remove(path)
    return x, rate


def _festival_batch(items: list[tuple[str, str, float]], tmpdir: str) -> list[tuple[np.ndarray, int]]:
    """Synthesize [(text, voice, duration_stretch)] with one festival process."""
    lines, paths = [], []
    for i, (text, voice, stretch) in enumerate(items):
        path = os.path.join(tmpdir, f"festival-{uuid.uuid4().hex}-{i}.wav")
        safe = text.replace("\\", " ").replace('"', " ")
        lines.append(f"(voice_{voice})")
        lines.append(f"(Parameter.set 'Duration_Stretch {stretch:.3f})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{safe}")) "{path}" \'riff)')
        paths.append(path)
    script = os.path.join(tmpdir, f"festival-{uuid.uuid4().hex}.scm")
    Path(script).write_text("\n".join(lines) + "\n")
    subprocess.run(["festival", "-b", script], capture_output=True, check=True)
    out = []
    for path in paths:
        x, rate = sf.read(path, dtype="float32")
        out.append((x, rate))
        os.remove(path)
    os.remove(script)
    return out


def _tts_speaker_params(rng: np.random.Generator, voice: str) -> dict:
    engine, name = voice.split(":")
    params = {"stretch": float(rng.uniform(0.8, 1.3)), "perturb": float(rng.uniform(0.9, 1.12))}
    # Diphone voices follow an F0 target well; the statistical voices (awb, rms, slt, HTS) keep their own prosody.
    params["f0"] = float(rng.uniform(85, 180)) if engine == "flite" and name.startswith("kal") else None
    return params


def _synthesize_tts(items: list[tuple[str, str, dict]], rng: np.random.Generator, tmpdir: str) -> list[np.ndarray]:
    """[(text, "engine:voice", params)] -> 32 kHz waveforms; festival items are batched in one process."""
    out: list = [None] * len(items)
    festival = []
    for i, (text, voice, p) in enumerate(items):
        engine, name = voice.split(":")
        stretch = p["stretch"] * float(rng.uniform(0.93, 1.07))
        if engine == "flite":
            f0 = None if p["f0"] is None else p["f0"] * float(rng.uniform(0.95, 1.05))
            out[i] = _flite(text, name, stretch, f0, tmpdir)
        else:
            festival.append((i, (text, name, stretch)))
    if festival:
        for (i, _), result in zip(festival, _festival_batch([item for _, item in festival], tmpdir)):
            out[i] = result
    waves = []
    for (_, _, p), (x, rate) in zip(items, out):
        waves.append(_resample(_to_mono(x), rate * p["perturb"] * float(rng.uniform(0.98, 1.02))))
    return waves


# ---------------------------------------------------------------------------------------------------------------------
# MIDI rendering with fluidsynth
# ---------------------------------------------------------------------------------------------------------------------


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _write_midi(path: str, events: list[tuple[float, bytes]], tpq: int = 960, tempo_us: int = 500000) -> None:
    """A format-0 MIDI file from (time in seconds, message bytes); note-offs sort before note-ons at equal times."""
    ticks_per_second = tpq * 1e6 / tempo_us
    data = b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big")
    last = 0
    for t, message in sorted(events, key=lambda e: (e[0], (e[1][0] & 0xF0) == 0x90)):
        tick = int(round(t * ticks_per_second))
        data += _vlq(tick - last) + message
        last = tick
    data += b"\x00\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(data)) + data)


def _render_midi(source: str, events: list, seconds: float, tmpdir: str) -> np.ndarray:
    """Render MIDI events into 32 kHz mono of at least `seconds`: fluidsynth with a soundfont of `SOUNDFONTS` (default
    reverb and chorus), or TiMidity++ with the `freepats` patch set."""
    stem = os.path.join(tmpdir, f"midi-{uuid.uuid4().hex}")
    _write_midi(stem + ".mid", events)
    if source == "freepats":
        command = ["timidity", "-c", FREEPATS_CFG, "-Ow", "--output-mono", "-s", str(SAMPLING_RATE), "-o",
                   stem + ".wav", stem + ".mid"]  # fmt: skip
    else:
        command = ["fluidsynth", "-ni", "-q", "-r", str(SAMPLING_RATE), "-g", "0.6", "-o",
                   "synth.dynamic-sample-loading=1", "-F", stem + ".wav", SOUNDFONTS[source],
                   stem + ".mid"]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True)
    x, rate = sf.read(stem + ".wav", dtype="float32", always_2d=True)
    os.remove(stem + ".mid")
    os.remove(stem + ".wav")
    assert rate == SAMPLING_RATE
    x = _to_mono(x)
    need = int(np.ceil(seconds * SAMPLING_RATE))
    return np.pad(x, (0, max(0, need - len(x))))


def _note(events: list, channel: int, t: float, pitch: int, velocity: int, duration: float) -> None:
    events.append((t, bytes([0x90 | channel, pitch, velocity])))
    events.append((t + duration, bytes([0x80 | channel, pitch, 0])))


def _instrument_phrase(events: list, rng: np.random.Generator, t0: float, program: int, seconds: float) -> None:
    """One phrase of `program` on channel 0 within [t0, t0 + seconds - 0.2): a held note (60%), a held 2-3 note chord
    (20%) or a 2-4 note melody (20%), in the instrument's middle register (+-10 semitones around the middle of
    `_pitch_range`), one random velocity."""
    low, high = _pitch_range(program)
    middle = (low + high) // 2
    low, high = max(low, middle - 10), min(high, middle + 10)
    events.append((t0, bytes([0xC0, program])))
    end = t0 + seconds - 0.2
    kind = rng.choice(["note", "chord", "melody"], p=[0.6, 0.2, 0.2])
    velocity = int(rng.integers(60, 121))
    t = t0 + float(rng.uniform(0.0, 0.15))
    if kind == "note":
        _note(events, 0, t, int(rng.integers(low, high + 1)), velocity, float(rng.uniform(0.8, end - t)))
    elif kind == "chord":
        root = int(rng.integers(low, max(low + 1, high - 6)))
        duration = float(rng.uniform(0.8, end - t))
        for interval in (0, int(rng.choice([3, 4])), 7)[: int(rng.integers(2, 4))]:
            _note(events, 0, t, min(root + interval, high), velocity, duration)
    else:
        pitch = int(rng.integers(low, high + 1))
        for _ in range(int(rng.integers(2, 5))):
            duration = float(rng.uniform(0.25, 0.6))
            if t + duration > end:
                break
            _note(events, 0, t, pitch, int(np.clip(velocity + rng.integers(-10, 11), 40, 127)), duration)
            t += duration + float(rng.uniform(0.0, 0.08))
            pitch = int(np.clip(pitch + rng.integers(-5, 6), low, high))
    events.append((t0 + seconds, bytes([0xB0, 123, 0])))  # all notes off


# ---------------------------------------------------------------------------------------------------------------------
# Jobs (run in worker processes; each returns a list of clip metadata dicts)
# ---------------------------------------------------------------------------------------------------------------------


def _job_keywords(directory: str, job: dict) -> list[dict]:
    """All ten keywords spoken by one speaker."""
    rng = _rng(job["seed"], "keywords", job["split"], job["speaker"])
    n = int(round(job["clip_seconds"] * SAMPLING_RATE))
    metas = []
    with tempfile.TemporaryDirectory() as tmpdir:
        if job["engine"] == "espeak":
            speed, pitch = rng.uniform(120, 230), rng.uniform(15, 85)
            perturb = float(rng.uniform(0.92, 1.1))
            waves = [
                _resample(_to_mono(x), rate * perturb * float(rng.uniform(0.98, 1.02)))
                for x, rate in _espeak_words(KEYWORDS, job["voice"], speed, pitch, rng)
            ]
        else:
            params = _tts_speaker_params(rng, job["voice"])
            waves = _synthesize_tts([(word, job["voice"], params) for word in KEYWORDS], rng, tmpdir)
    for label, (word, x) in enumerate(zip(KEYWORDS, waves)):
        x = _set_peak(_place(_trim(x), n, rng), rng)
        if _is_silent(x):
            raise RuntimeError(f"silent keyword clip: {job['speaker']} {word}")
        slug = re.sub(r"[^A-Za-z0-9]+", "-", job["speaker"]).strip("-")
        meta = _write_wav(directory, f"{job['split']}/{slug}_{word}.wav", x)
        meta.update(split=job["split"], label=label, word=word, speaker=job["speaker"], engine=job["engine"],
                    voice_group=job["voice_group"])  # fmt: skip
        metas.append(meta)
    return metas


def _job_instruments(directory: str, job: dict) -> list[dict]:
    """`clips_per_program` phrases for each of `programs`, rendered with one source in one fluidsynth/timidity run."""
    rng = _rng(job["seed"], "instruments", job["split"], job["soundfont"], job["chunk"])
    seconds, gap = job["clip_seconds"], 1.0
    slot = seconds + gap
    items, events = [], []
    for program in job["programs"]:
        for k in range(job["clips_per_program"]):
            t0 = len(items) * slot + 0.5
            _instrument_phrase(events, rng, t0, program, seconds)
            items.append((program, k, t0))
    with tempfile.TemporaryDirectory() as tmpdir:
        audio = _render_midi(job["soundfont"], events, len(items) * slot + 1.0, tmpdir)
    n = int(round(seconds * SAMPLING_RATE))
    metas = []
    for program, k, t0 in items:
        start = int(round(t0 * SAMPLING_RATE))
        x = audio[start : start + n].copy()
        if _is_silent(x):
            raise RuntimeError(f"silent instrument clip: {job['soundfont']} program {program}")
        x = _set_peak(_fade(x, 0.005), rng)
        family = program // 8
        meta = _write_wav(directory, f"{job['split']}/{job['soundfont']}_p{program:03d}_{k:03d}.wav", x)
        meta.update(split=job["split"], label=family, family=INSTRUMENT_FAMILIES[family], program=program,
                    instrument=GM_PROGRAM_NAMES[program], soundfont=job["soundfont"])  # fmt: skip
        metas.append(meta)
    return metas


_SENTENCES: list[str] | None = None


def corpus_sentences() -> list[str]:
    """English sentences for the corpus TTS (Python's documentation topics and Debian's license texts, both on every
    machine), with the ten keywords removed."""
    global _SENTENCES
    if _SENTENCES is None:
        import pydoc_data.topics

        texts = list(pydoc_data.topics.topics.values())
        for path in sorted(glob.glob("/usr/share/common-licenses/*")):
            if os.path.isfile(path) and not path.endswith(".gz"):
                texts.append(Path(path).read_text(errors="ignore"))
        text = re.sub(r"\s+", " ", " ".join(texts))
        keywords = set(KEYWORDS)
        out = set()
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if not re.fullmatch(r"[A-Z][A-Za-z ,;'\-]+[.!?]", sentence):
                continue
            words = [w for w in sentence.split() if re.sub(r"[^a-z]", "", w.lower()) not in keywords]
            if 5 <= len(words) <= 25:
                out.add(" ".join(words))
        _SENTENCES = sorted(out)
    return _SENTENCES


def _corpus_voices() -> dict:
    variants = espeak_variant_split()["train"]
    return {
        "espeak_english": ESPEAK_ENGLISH_TRAIN,
        "espeak_foreign": ESPEAK_FOREIGN_TRAIN,
        "espeak_variants": variants,
        "tts": tuple(v for v, g in TTS_VOICES.items() if g not in TTS_GROUPS_TEST),
    }


def _job_corpus(directory: str, job: dict) -> list[dict]:
    kind, seconds = job["kind"], job["clip_seconds"]
    rng = _rng(job["seed"], "corpus", kind, job["chunk"])
    n = int(round(seconds * SAMPLING_RATE))
    clips: list[tuple[np.ndarray, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        if kind == "speech_espeak":
            clips = _corpus_espeak(rng, job["count"], n)
        elif kind == "speech_tts":
            clips = _corpus_tts(rng, job["count"], n, tmpdir)
        elif kind == "speech_human":
            clips = _corpus_human_speech(rng, job["count"], n)
        elif kind == "music_midi":
            clips = _corpus_midi(rng, job["count"], seconds, job["soundfont"], tmpdir)
        elif kind == "music_recorded":
            clips = _corpus_recorded_music(rng, job["count"], seconds)
        elif kind == "sfx":
            clips = _corpus_sfx(rng, job["count"], n)
        else:
            raise ValueError(kind)
    metas = []
    for i, (x, source) in enumerate(clips):
        x = _set_peak(x, rng, -25.0, -1.0)
        meta = _write_wav(directory, f"clips/{kind}_{job['chunk']:03d}_{i:04d}.wav", x)
        meta.update(kind=kind, source=source)
        metas.append(meta)
    return metas


def _concat_until(rng: np.random.Generator, n: int, next_piece) -> np.ndarray:
    """Concatenate pieces from `next_piece()` with short pauses until `n` samples, then take a random `n` crop."""
    pieces, total = [], 0
    while total < n:
        piece = _trim(next_piece())
        pause = np.zeros(int(rng.uniform(0.1, 0.6) * SAMPLING_RATE), dtype=np.float32)
        pieces += [piece, pause]
        total += len(piece) + len(pause)
    x = np.concatenate(pieces)
    return _place(x, n, rng)


def _words(rng: np.random.Generator, sentences: list[str], max_words: int) -> str:
    """A random sentence, cut to a random window of at most `max_words` words (about 4 s of speech)."""
    words = str(rng.choice(sentences)).split()
    start = int(rng.integers(0, max(1, len(words) - max_words + 1)))
    return " ".join(words[start : start + max_words])


def _corpus_espeak(rng, count, n):
    voices, sentences, clips = _corpus_voices(), corpus_sentences(), []
    for _ in range(count):
        base = rng.choice(voices["espeak_english"] if rng.random() < 0.5 else voices["espeak_foreign"])
        voice = f"{base}+{rng.choice(voices['espeak_variants'])}"
        speed, pitch, perturb = rng.uniform(120, 230), rng.uniform(15, 85), rng.uniform(0.92, 1.1)

        def piece(voice=voice, speed=speed, pitch=pitch, perturb=perturb):
            x, rate = _espeak(_words(rng, sentences, 14), voice, speed, pitch)
            return _resample(_to_mono(x), rate * perturb)

        clips.append((_concat_until(rng, n, piece), f"espeak:{voice}"))
    return clips


def _corpus_tts(rng, count, n, tmpdir):
    voices, sentences = _corpus_voices()["tts"], corpus_sentences()
    chosen = [str(rng.choice(voices)) for _ in range(count)]
    params = [_tts_speaker_params(rng, v) for v in chosen]
    # Two sentences per clip (almost always > 3 s); synthesized in one batch so festival starts once.
    items = [(_words(rng, sentences, 10), v, p) for v, p in zip(chosen, params) for _ in range(2)]
    waves = _synthesize_tts(items, rng, tmpdir)
    clips = []
    for i, voice in enumerate(chosen):
        pair = itertools.cycle(waves[2 * i : 2 * i + 2])
        clips.append((_concat_until(rng, n, lambda pair=pair: next(pair)), voice))
    return clips


def _asterisk_files(language: str) -> list[str]:
    return sorted(glob.glob(os.path.join(ASTERISK_SPEECH[language], "**", "*.wav"), recursive=True))


def _corpus_human_speech(rng, count, n):
    files = {lang: _asterisk_files(lang) for lang in ASTERISK_SPEECH}
    clips = []
    for _ in range(count):
        lang = str(rng.choice(sorted(files)))
        x = _concat_until(rng, n, lambda lang=lang: _read_audio(str(rng.choice(files[lang]))))
        clips.append((x, f"asterisk:{lang}"))
    return clips


def _corpus_midi(rng, count, seconds, soundfont, tmpdir):
    """Random multi-part MIDI (1-3 melodic parts, drums half of the time), programs outside the test programs."""
    allowed = [p for p in source_programs(soundfont) if p not in INSTRUMENT_TEST_PROGRAMS]
    slot = seconds + 1.0
    events = []
    for i in range(count):
        t0 = i * slot + 0.5
        beat = float(rng.uniform(0.2, 0.6))
        for channel in range(int(rng.integers(1, 4))):
            program = int(rng.choice(allowed))
            events.append((t0, bytes([0xC0 | channel, program])))
            low = int(rng.integers(30, 72))
            t = t0 + float(rng.uniform(0, beat))
            pitch = int(rng.integers(low, low + 24))
            while t < t0 + seconds - 0.1:
                duration = beat * float(rng.choice([0.5, 1, 1, 2, 3]))
                if rng.random() < 0.85:
                    _note(events, channel, t, pitch, int(rng.integers(40, 120)), min(duration, t0 + seconds - t))
                t += duration
                pitch = int(np.clip(pitch + rng.integers(-7, 8), low, low + 24))
        if rng.random() < 0.5:
            drums = rng.choice([35, 36, 38, 40, 42, 44, 46, 49, 51], size=3, replace=False)
            t = t0
            while t < t0 + seconds - 0.1:
                _note(events, 9, t, int(rng.choice(drums)), int(rng.integers(50, 120)), 0.1)
                t += beat / 2 * float(rng.choice([1, 1, 2]))
        events += [(t0 + seconds, bytes([0xB0 | c, 123, 0])) for c in range(16)]
    audio = _render_midi(soundfont, events, count * slot + 1.0, tmpdir)
    n = int(round(seconds * SAMPLING_RATE))
    clips = []
    for i in range(count):
        start = int(round((i * slot + 0.5) * SAMPLING_RATE))
        clips.append((_fade(audio[start : start + n].copy(), 0.005), f"midi:{soundfont}"))
    return clips


def _corpus_recorded_music(rng, count, seconds):
    files = sorted(glob.glob(os.path.join(ASTERISK_MOH, "*.wav")))
    clips = []
    for _ in range(count):
        path = str(rng.choice(files))
        start = float(rng.uniform(0, sf.info(path).duration - seconds))
        x = _read_audio(path, start, seconds)[: int(round(seconds * SAMPLING_RATE))]
        clips.append((_place(x, int(round(seconds * SAMPLING_RATE)), rng), f"asterisk-moh:{Path(path).stem}"))
    return clips


def sfx_files() -> list[str]:
    """Sound-effect files: `ufoai:<member of 0snd.pk3>` and `wordwarvi:<path>`."""
    with zipfile.ZipFile(UFOAI_PK3) as z:
        ufo = sorted(f"ufoai:{name}" for name in z.namelist() if name.endswith(".ogg"))
    return ufo + sorted(f"wordwarvi:{p}" for p in glob.glob(os.path.join(WORDWARVI_DIR, "*.ogg")))


def _read_sfx(name: str, rng: np.random.Generator, max_seconds: float, archive) -> np.ndarray:
    package, path = name.split(":", 1)
    source = archive.read(path) if package == "ufoai" else path
    info = sf.info(io.BytesIO(source) if isinstance(source, bytes) else source)
    start = float(rng.uniform(0, max(0.0, info.duration - max_seconds)))
    return _read_audio(source, start, max_seconds)


def _corpus_sfx(rng, count, n):
    """1-3 sound effects (random crops) at random offsets and gains over the clip."""
    files = sfx_files()
    clips = []
    with zipfile.ZipFile(UFOAI_PK3) as archive:
        for _ in range(count):
            x = np.zeros(n, dtype=np.float32)
            names = []
            for _ in range(int(rng.integers(1, 4))):
                name = str(rng.choice(files))
                event = _read_sfx(name, rng, n / SAMPLING_RATE, archive)[:n]
                peak = float(np.abs(event).max())
                if peak < 1e-6:
                    continue
                event = event / peak * 10 ** (rng.uniform(-12, 0) / 20)
                start = int(rng.integers(0, n - len(event) + 1))
                x[start : start + len(event)] += event
                names.append(name.split(":")[0])
            if _is_silent(x):  # all-silent draws are rare; fall back to one long event
                x = _place(_read_sfx(files[0], rng, n / SAMPLING_RATE, archive), n, rng)
                names = ["ufoai"]
            clips.append((x, "sfx:" + "+".join(sorted(set(names)))))
    return clips


# ---------------------------------------------------------------------------------------------------------------------
# Cache and parallel driver
# ---------------------------------------------------------------------------------------------------------------------


def _run_job(directory: str, job: dict) -> list[dict]:
    worker = {"keywords": _job_keywords, "instruments": _job_instruments, "corpus": _job_corpus}[job["task"]]
    return worker(directory, job)


def _read_manifest(directory: Path, params: dict) -> dict | None:
    try:
        manifest = json.loads((directory / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("params") != params:
        return None
    if not all((directory / clip["file"]).is_file() for clip in manifest["clips"]):
        return None
    return manifest


def _write_metadata_csv(directory: Path, clips: list[dict], columns: list[str]) -> None:
    """`metadata.csv` per split folder, for `load_dataset("audiofolder", data_dir=directory)`."""
    by_folder: dict[str, list[dict]] = {}
    for clip in clips:
        by_folder.setdefault(clip["file"].split("/")[0], []).append(clip)
    for folder, rows in by_folder.items():
        with open(directory / folder / "metadata.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file_name", *columns])
            for row in rows:
                writer.writerow([row["file"].split("/", 1)[1], *(row[c] for c in columns)])


def _build_cached(directory: Path, params: dict, jobs: list[dict], num_proc: int, csv_columns: list[str],
                  worker=_run_job) -> dict:  # fmt: skip
    """Load the manifest of `directory`, or run `jobs` (each `worker(folder, job)`, a module-level function: it is
    sent to the worker processes) into a temporary folder and rename it into place."""
    manifest = _read_manifest(directory, params)
    if manifest is not None:
        return manifest
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f"{_TMP_PREFIX}{directory.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    start = time.time()
    try:
        if num_proc <= 1:
            results = [worker(str(tmp), job) for job in jobs]
        else:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            # Longest jobs first keeps both workers busy; results come back in job order whatever the schedule.
            order = sorted(range(len(jobs)), key=lambda i: -jobs[i].get("cost", 1.0))
            with ProcessPoolExecutor(num_proc, mp_context=context) as pool:
                futures = {i: pool.submit(worker, str(tmp), jobs[i]) for i in order}
                results = [futures[i].result() for i in range(len(jobs))]
        clips = [clip for result in results for clip in result]
        _write_metadata_csv(tmp, clips, csv_columns)
        manifest = {"params": params, "clips": clips, "build_seconds": round(time.time() - start, 1)}
        (tmp / _MANIFEST).write_text(json.dumps(manifest))
        if directory.exists():  # stale cache (other parameters or incomplete): move it aside, then replace it
            stale = directory.parent / f"{_TMP_PREFIX}stale-{directory.name}-{uuid.uuid4().hex[:8]}"
            os.replace(directory, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _default_num_proc() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(2, cpus))


def _to_dataset(directory: Path, clips: list[dict], columns: dict):
    """A `datasets.Dataset` with an `Audio(32 kHz)` column `audio` and the given {column: feature} columns."""
    from datasets import Audio, Dataset, Features

    features = Features({"audio": Audio(sampling_rate=SAMPLING_RATE), **columns})
    data = {"audio": [str(directory / clip["file"]) for clip in clips]}
    for name in columns:
        data[name] = [clip[name] for clip in clips]
    return Dataset.from_dict(data, features=features)


def load_manifest(out_dir: str | os.PathLike, name: str) -> dict:
    """The manifest of a built dataset folder `out_dir/name` ("keywords", "instruments" or "pretrain")."""
    return json.loads((Path(out_dir) / name / _MANIFEST).read_text())


# ---------------------------------------------------------------------------------------------------------------------
# Public builders
# ---------------------------------------------------------------------------------------------------------------------


def keyword_speakers(num_train_espeak: int = 240, num_test_espeak: int = 80, tts_speakers_per_voice: int = 12,
                     seed: int = 0) -> dict[str, list[dict]]:  # fmt: skip
    """The speakers of each split of the keyword task: espeak-ng (base voice + variant) pairs drawn without
    replacement (half English accents, half foreign), and `tts_speakers_per_voice` pseudo-speakers (random rate, F0
    and speed perturbation) of each flite/festival voice."""
    variants = espeak_variant_split()
    bases = {
        "train": (ESPEAK_ENGLISH_TRAIN, ESPEAK_FOREIGN_TRAIN),
        "test": (ESPEAK_ENGLISH_TEST, ESPEAK_FOREIGN_TEST),
    }
    counts = {"train": num_train_espeak, "test": num_test_espeak}
    out = {}
    for split in ("train", "test"):
        rng = _rng(seed, "speakers", split)
        english, foreign = bases[split]
        combos: set[tuple[str, str]] = set()
        limit = (len(english) + len(foreign)) * len(variants[split])
        if counts[split] > limit:
            raise ValueError(f"at most {limit} espeak speakers in {split}")
        speakers = []
        while len(speakers) < counts[split]:
            base = str(rng.choice(english if rng.random() < 0.5 else foreign))
            variant = str(rng.choice(variants[split]))
            if (base, variant) in combos:
                continue
            combos.add((base, variant))
            speakers.append({"engine": "espeak", "voice": f"{base}+{variant}", "speaker": f"espeak:{base}+{variant}",
                             "voice_group": base})  # fmt: skip
        for voice, group in TTS_VOICES.items():
            if (group in TTS_GROUPS_TEST) == (split == "test"):
                for k in range(tts_speakers_per_voice):
                    speakers.append({"engine": voice.split(":")[0], "voice": voice, "speaker": f"{voice}#{k}",
                                     "voice_group": group})  # fmt: skip
        out[split] = speakers
    return out


def build_keyword_task(out_dir: str | os.PathLike, seed: int = 0, num_train_espeak: int = 240,
                       num_test_espeak: int = 80, tts_speakers_per_voice: int = 12, clip_seconds: float = 1.0,
                       num_proc: int | None = None):  # fmt: skip
    """Task A: 10 spoken keywords x many synthetic voices, train/test split by voice (see module docstring).

    Every speaker says each keyword once (random position in the clip, random peak level -20..-1 dBFS). Default
    sizes: train 3,000 clips (240 espeak-ng + 60 flite/festival speakers), test 1,160 clips (80 + 36 speakers).

    Returns a `datasets.DatasetDict` with `train` and `test`, columns `audio` (Audio, 32 kHz), `label` (ClassLabel of
    `KEYWORDS`), `speaker` (str), `engine` (espeak/flite/festival) and `voice_group` (espeak base voice or the person
    behind a flite/festival voice). Cached in `out_dir/keywords`.
    """
    from datasets import ClassLabel, DatasetDict, Value

    params = {"version": GENERATOR_VERSION, "seed": seed, "num_train_espeak": num_train_espeak,
              "num_test_espeak": num_test_espeak, "tts_speakers_per_voice": tts_speakers_per_voice,
              "clip_seconds": clip_seconds, "sampling_rate": SAMPLING_RATE}  # fmt: skip
    speakers = keyword_speakers(num_train_espeak, num_test_espeak, tts_speakers_per_voice, seed)
    jobs = []
    for split in ("train", "test"):
        for speaker in speakers[split]:
            cost = 3.0 if speaker["engine"] == "festival" else 1.0
            jobs.append({"task": "keywords", "split": split, "seed": seed, "clip_seconds": clip_seconds, "cost": cost,
                         **speaker})  # fmt: skip
    directory = Path(out_dir) / "keywords"
    n = _default_num_proc() if num_proc is None else num_proc
    manifest = _build_cached(directory, params, jobs, n, ["label", "word", "speaker", "engine", "voice_group"])
    columns = {"label": ClassLabel(names=list(KEYWORDS)), "speaker": Value("string"), "engine": Value("string"),
               "voice_group": Value("string")}  # fmt: skip
    return DatasetDict(
        {
            split: _to_dataset(directory, [c for c in manifest["clips"] if c["split"] == split], columns)
            for split in ("train", "test")
        }
    )


def build_instrument_task(out_dir: str | os.PathLike, seed: int = 0, train_clips_per_program: int = 12,
                          test_clips_per_program: int = 16, clip_seconds: float = 2.0,
                          num_proc: int | None = None):  # fmt: skip
    """Task B: instrument family (10 GM families) of rendered phrases; test sources and programs unseen in train.

    Train: the 60 train programs (6 per family) from each of `SOUNDFONTS_TRAIN` (freepats: the 43 it defines),
    `train_clips_per_program` clips each (default 2,676 clips). Test: the 20 programs of `INSTRUMENT_TEST_PROGRAMS`
    from each of `SOUNDFONTS_TEST`, `test_clips_per_program` each (default 640 clips). Each clip holds one phrase (a
    held note, a held chord or a short melody in the instrument's middle register, random velocity), with the
    renderer's default reverb/chorus, at a random peak level (-20..-1 dBFS).

    Returns a `datasets.DatasetDict` (`train`, `test`) with `audio`, `label` (ClassLabel of `INSTRUMENT_FAMILIES`),
    `soundfont` (the source: a soundfont name or `freepats`), `program` (0-based GM program) and `instrument` (GM
    name). Cached in `out_dir/instruments`.
    """
    from datasets import ClassLabel, DatasetDict, Value

    params = {"version": GENERATOR_VERSION, "seed": seed, "train_clips_per_program": train_clips_per_program,
              "test_clips_per_program": test_clips_per_program, "clip_seconds": clip_seconds,
              "sampling_rate": SAMPLING_RATE}  # fmt: skip
    jobs = []
    for split, sources in (("train", SOUNDFONTS_TRAIN), ("test", SOUNDFONTS_TEST)):
        per_program = train_clips_per_program if split == "train" else test_clips_per_program
        for source in sources:
            programs = [p for p in _instrument_programs(split) if p in source_programs(source)]
            # Fewer, larger jobs for the soundfont that is slow to load.
            chunks = 2 if source == "MuseScore_General_Lite" or split == "test" else 3
            size = -(-len(programs) // chunks)
            for chunk in range(chunks):
                part = programs[chunk * size : (chunk + 1) * size]
                cost = len(part) * per_program / 100 + (3.0 if source == "MuseScore_General_Lite" else 0.5)
                jobs.append({"task": "instruments", "split": split, "seed": seed, "soundfont": source, "chunk": chunk,
                             "programs": part, "clips_per_program": per_program, "clip_seconds": clip_seconds,
                             "cost": cost})  # fmt: skip
    directory = Path(out_dir) / "instruments"
    n = _default_num_proc() if num_proc is None else num_proc
    manifest = _build_cached(directory, params, jobs, n, ["label", "family", "program", "instrument", "soundfont"])
    columns = {"label": ClassLabel(names=list(INSTRUMENT_FAMILIES)), "soundfont": Value("string"),
               "program": Value("int32"), "instrument": Value("string")}  # fmt: skip
    return DatasetDict(
        {
            split: _to_dataset(directory, [c for c in manifest["clips"] if c["split"] == split], columns)
            for split in ("train", "test")
        }
    )


# Share of each kind of audio in the pre-training corpus.
CORPUS_MIX = {
    "speech_espeak": 0.28,
    "speech_tts": 0.08,
    "speech_human": 0.14,
    "music_midi": 0.30,
    "music_recorded": 0.05,
    "sfx": 0.15,
}
_CORPUS_CHUNK = {"speech_espeak": 60, "speech_tts": 40, "speech_human": 100, "music_midi": 150,
                 "music_recorded": 100, "sfx": 100}  # fmt: skip


def _corpus_counts(num_clips: int) -> dict[str, int]:
    counts = {kind: int(np.floor(share * num_clips)) for kind, share in CORPUS_MIX.items()}
    for kind in sorted(CORPUS_MIX, key=lambda k: -CORPUS_MIX[k])[: num_clips - sum(counts.values())]:
        counts[kind] += 1
    return counts


def build_pretraining_corpus(out_dir: str | os.PathLike, num_clips: int = 4000, seed: int = 0,
                             clip_seconds: float = 3.0, num_proc: int | None = None):  # fmt: skip
    """The unlabeled pre-training corpus: `num_clips` clips of `clip_seconds` mixing the kinds of `CORPUS_MIX`.

    Uses only train-side sources (espeak-ng train base voices and variants, flite/festival voices of the train groups,
    train soundfonts, GM programs outside `INSTRUMENT_TEST_PROGRAMS`) plus sources that no task uses (Asterisk
    prompts and music on hold, UFO:AI and Word War vi sound effects). Asserts that no test source is used.

    Returns a `datasets.Dataset` with `audio` (Audio, 32 kHz), `source` (e.g. `espeak:de+m3`, `flite:rms`,
    `asterisk:en`, `midi:FluidR3_GM`, `asterisk-moh:<track>`, `sfx:ufoai`) and `kind` (a key of
    `CORPUS_MIX`). Cached in `out_dir/pretrain`.
    """
    from datasets import Value

    params = {"version": GENERATOR_VERSION, "seed": seed, "num_clips": num_clips, "clip_seconds": clip_seconds,
              "mix": CORPUS_MIX, "sampling_rate": SAMPLING_RATE}  # fmt: skip
    jobs = []
    for kind, count in _corpus_counts(num_clips).items():
        size = _CORPUS_CHUNK[kind]
        for chunk in range(-(-count // size)):
            job = {"task": "corpus", "kind": kind, "seed": seed, "chunk": chunk, "clip_seconds": clip_seconds,
                   "count": min(size, count - chunk * size)}  # fmt: skip
            if kind == "music_midi":
                job["soundfont"] = SOUNDFONTS_TRAIN[chunk % len(SOUNDFONTS_TRAIN)]
            job["cost"] = job["count"] * {"music_midi": 0.04, "speech_tts": 0.06}.get(kind, 0.03) * clip_seconds
            jobs.append(job)
    directory = Path(out_dir) / "pretrain"
    n = _default_num_proc() if num_proc is None else num_proc
    manifest = _build_cached(directory, params, jobs, n, ["source", "kind"])
    _assert_corpus_sources(manifest["clips"])
    return _to_dataset(directory, manifest["clips"], {"source": Value("string"), "kind": Value("string")})


def _assert_corpus_sources(clips: list[dict]) -> None:
    test = keyword_test_sources()
    for clip in clips:
        engine, _, name = clip["source"].partition(":")
        if engine == "espeak":
            base, variant = name.split("+", 1)
            assert base not in test["espeak_base"] and variant not in test["espeak_variant"], clip
        elif engine in ("flite", "festival"):
            assert clip["source"] not in test["tts_voice"], clip
        elif engine == "midi":
            assert name in SOUNDFONTS_TRAIN and name not in SOUNDFONTS_TEST, clip


def assert_no_test_leakage(out_dir: str | os.PathLike) -> dict:
    """Check that the corpus in `out_dir/pretrain` shares no audio (PCM sha1) with any labeled clip, and no voice or
    soundfont with the test splits. Returns counts of what was checked."""
    corpus = load_manifest(out_dir, "pretrain")["clips"]
    _assert_corpus_sources(corpus)
    corpus_hashes = {clip["sha1"] for clip in corpus}
    checked = {"corpus_clips": len(corpus)}
    for name in ("keywords", "instruments"):
        labeled = load_manifest(out_dir, name)["clips"]
        overlap = corpus_hashes & {clip["sha1"] for clip in labeled}
        assert not overlap, f"{len(overlap)} {name} clips also in the pre-training corpus"
        test = [clip for clip in labeled if clip["split"] == "test"]
        train = [clip for clip in labeled if clip["split"] == "train"]
        key = "speaker" if name == "keywords" else "soundfont"
        group = "voice_group" if name == "keywords" else "program"
        assert not {c[key] for c in test} & {c[key] for c in train}, f"{name}: a test {key} is also in train"
        assert not {c[group] for c in test} & {c[group] for c in train}, f"{name}: a test {group} is also in train"
        checked[f"{name}_clips"] = len(labeled)
    return checked


def build_all(out_dir: str | os.PathLike, num_pretrain: int = 4000, seed: int = 0, num_proc: int | None = None,
              install: bool = True) -> dict:  # fmt: skip
    """Install what is missing, build (or load) the corpus and both tasks, and check for leakage."""
    ensure_system_packages(install=install)
    timings, out = {}, {}
    for name, build in (
        ("keywords", lambda: build_keyword_task(out_dir, seed=seed, num_proc=num_proc)),
        ("instruments", lambda: build_instrument_task(out_dir, seed=seed, num_proc=num_proc)),
        ("pretrain", lambda: build_pretraining_corpus(out_dir, num_clips=num_pretrain, seed=seed, num_proc=num_proc)),
    ):
        start = time.time()
        out[name] = build()
        timings[name] = time.time() - start
    out["leakage_check"] = assert_no_test_leakage(out_dir)
    out["seconds"] = timings
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Baseline: pooled log-mel + logistic regression
# ---------------------------------------------------------------------------------------------------------------------


def _mel_filterbank(n_mels: int = 64, n_fft: int = 1024, f_max: float = 15000.0) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / SAMPLING_RATE)
    fb = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        low, center, high = hz[i : i + 3]
        fb[i] = np.clip(np.minimum((bins - low) / (center - low), (high - bins) / (high - center)), 0, None)
    return fb


_FB = None


def log_mel(x: np.ndarray, n_fft: int = 1024, hop: int = 320) -> np.ndarray:
    """[frames, 64] log-mel (Hann window, 32 kHz)."""
    global _FB
    if _FB is None:
        _FB = _mel_filterbank(n_fft=n_fft)
    x = np.pad(x.astype(np.float64), (n_fft // 2, n_fft // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return np.log(power @ _FB.T + 1e-8)


def pooled_log_mel(paths: list[str]) -> np.ndarray:
    """Mean and standard deviation over time of the log-mel of each file: [len(paths), 128]."""
    feats = []
    for path in paths:
        x, _ = sf.read(path, dtype="float32")
        m = log_mel(x)
        feats.append(np.concatenate([m.mean(axis=0), m.std(axis=0)]))
    return np.stack(feats).astype(np.float32)


def baseline_scores(out_dir: str | os.PathLike, seed: int = 0, tasks=("keywords", "instruments")) -> dict:
    """Test accuracy of standardized mean+std pooled log-mel + logistic regression on each built task of `tasks`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = {}
    for name in tasks:
        directory = Path(out_dir) / name
        clips = load_manifest(out_dir, name)["clips"]
        split = {s: [c for c in clips if c["split"] == s] for s in ("train", "test")}
        x = {s: pooled_log_mel([str(directory / c["file"]) for c in split[s]]) for s in split}
        y = {s: np.array([c["label"] for c in split[s]]) for s in split}
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000, random_state=seed))
        model.fit(x["train"], y["train"])
        scores[name] = {
            "train_accuracy": float(model.score(x["train"], y["train"])),
            "test_accuracy": float(model.score(x["test"], y["test"])),
            "chance": 1.0 / len(np.unique(y["train"])),
        }
    return scores


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------


def summarize(out_dir: str | os.PathLike) -> str:
    """A text summary of the built datasets (clips per split/class, sources per split, durations, build times)."""
    lines = []
    for name, class_key, source_key in (
        ("keywords", "word", "speaker"),
        ("instruments", "family", "soundfont"),
        ("pretrain", "kind", "source"),
    ):
        manifest = load_manifest(out_dir, name)
        clips = manifest["clips"]
        hours = sum(c["seconds"] for c in clips) / 3600
        lines.append(f"== {name}: {len(clips)} clips, {hours:.2f} h, built in {manifest['build_seconds']} s")
        splits = sorted({c.get("split", "all") for c in clips}, reverse=True)
        for split in splits:
            part = [c for c in clips if c.get("split", "all") == split]
            per_class = Counter(c[class_key] for c in part)
            sources = Counter(c[source_key] for c in part)
            counts = ", ".join(f"{k}={v}" for k, v in sorted(per_class.items()))
            lines.append(f"  [{split}] {len(part)} clips; {class_key}: {counts}")
            lines.append(f"  [{split}] {len(sources)} distinct {source_key}s")
            if name == "keywords":
                groups = sorted({c["voice_group"] for c in part})
                engines = Counter(c["engine"] for c in part)
                lines.append(f"  [{split}] engines: {dict(engines)}; {len(groups)} voice groups: {' '.join(groups)}")
            if name == "instruments":
                programs = sorted({c["program"] for c in part})
                lines.append(f"  [{split}] soundfonts: {sorted(sources)}; {len(programs)} programs")
            if name == "pretrain":
                prefixes = Counter(c["source"].split(":")[0] for c in part)
                lines.append(f"  [{split}] by source type: {dict(prefixes)}")
    variants = espeak_variant_split()
    lines.append(f"espeak variants: {len(variants['train'])} train, {len(variants['test'])} test: "
                 + " ".join(variants["test"]))  # fmt: skip
    return "\n".join(lines)


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, help="folder for the cached datasets")
    parser.add_argument("--num_pretrain", type=int, default=4000, help="clips in the pre-training corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_proc", type=int, default=None, help="worker processes (default: min(2, cores))")
    parser.add_argument("--no_install", action="store_true", help="fail instead of apt-get installing packages")
    parser.add_argument("--baseline", action="store_true", help="also score a pooled log-mel + logistic regression")
    args = parser.parse_args(argv)
    start, cpu = time.time(), _cpu_seconds()
    result = build_all(args.out_dir, args.num_pretrain, args.seed, args.num_proc, install=not args.no_install)
    total, cpu = time.time() - start, _cpu_seconds() - cpu
    print(summarize(args.out_dir))
    print("build/load wall seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in result["seconds"].items())
          + f", total={total:.1f}; CPU seconds (this process and its children) {cpu:.1f}")  # fmt: skip
    print(f"leakage check passed: {result['leakage_check']}")
    if args.baseline:
        start = time.time()
        for name, score in baseline_scores(args.out_dir, args.seed).items():
            print(
                f"baseline (pooled log-mel + logistic regression) {name}: test accuracy "
                f"{score['test_accuracy']:.3f} (train {score['train_accuracy']:.3f}, chance {score['chance']:.3f})"
            )
        print(f"baseline seconds: {time.time() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
