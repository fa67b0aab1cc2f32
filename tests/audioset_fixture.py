"""Local stand-ins for AudioSet on the Hub (`agkphysics/AudioSet`), written by the tests.

Same schema as the Hub dataset: `video_id` (string), `audio` (`Audio`, FLAC bytes at 48 kHz), `labels` (list of MIDs)
and `human_labels` (list of names). Some clips are stereo, some longer and some shorter than the training clips, and
a few are broken on purpose: garbage bytes (`BAD_DECODE`), an empty file (`BAD_EMPTY`), NaN samples (`BAD_NAN`, a
float WAV since FLAC cannot hold NaN) and a clip far shorter than one patch (`BAD_SHORT`).
"""

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from datasets import Audio, Dataset, Features, List, Value


RATE = 48000
LABELS = [("/m/09x0r", "Speech"), ("/m/04rlf", "Music"), ("/m/0jbk", "Animal"), ("/m/07yv9", "Vehicle")]
BAD_DECODE, BAD_EMPTY, BAD_NAN, BAD_SHORT = "bad-garbage", "bad-empty", "bad-nan", "bad-short"
BAD_IDS = {BAD_DECODE: "decode_error", BAD_EMPTY: "empty", BAD_NAN: "non_finite", BAD_SHORT: "too_short"}


def _encode(wave: np.ndarray, fmt: str = "FLAC", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format=fmt, subtype=subtype)
    return buffer.getvalue()


def good_clip(index: int, seconds: float) -> np.ndarray:
    """A deterministic tone-plus-noise clip; odd indices are stereo ([samples, 2])."""
    rng = np.random.default_rng(index)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * index) * t) + 0.05 * rng.standard_normal(n)
    wave = wave.astype(np.float32)
    if index % 2:
        return np.stack([wave, 0.5 * wave], axis=1)
    return wave


def clip_seconds_for(index: int) -> float:
    # A mix of clips longer and shorter than the 1 s training clips used by the tests.
    return (1.6, 0.7, 1.25, 2.0)[index % 4]


def audioset_rows(num_good: int, prefix: str = "clip", with_bad: bool = True) -> dict:
    entries = []
    for i in range(num_good):
        video_id = f"{prefix}-{i:04d}"
        entries.append((video_id, _encode(good_clip(i, clip_seconds_for(i))), f"{video_id}.flac"))
    if with_bad:
        bad = [
            (BAD_DECODE, b"this is not a FLAC file" * 20, f"{BAD_DECODE}.flac"),
            (BAD_EMPTY, _encode(np.zeros(0, dtype=np.float32)), f"{BAD_EMPTY}.flac"),
            (BAD_NAN, _encode(np.full(RATE, np.nan, dtype=np.float32), "WAV", "FLOAT"), f"{BAD_NAN}.wav"),
            (BAD_SHORT, _encode(np.full(int(0.02 * RATE), 0.1, dtype=np.float32)), f"{BAD_SHORT}.flac"),
        ]
        for position, entry in zip((1, 4, 6, 9), bad):
            entries.insert(min(position, len(entries)), entry)
    rows = {"video_id": [], "audio": [], "labels": [], "human_labels": []}
    for index, (video_id, data, path) in enumerate(entries):
        mid, name = LABELS[index % len(LABELS)]
        rows["video_id"].append(video_id)
        rows["audio"].append({"bytes": data, "path": path})
        rows["labels"].append([mid])
        rows["human_labels"].append([name])
    return rows


FEATURES = Features(
    {
        "video_id": Value("string"),
        "audio": Audio(sampling_rate=RATE),
        "labels": List(Value("string")),
        "human_labels": List(Value("string")),
    }
)


def write_audioset_parquet(path: Path, num_good: int, prefix: str = "clip", with_bad: bool = True) -> Path:
    """One parquet file with AudioSet's schema (as `datasets` writes it, Audio feature metadata included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(audioset_rows(num_good, prefix, with_bad), features=FEATURES).to_parquet(str(path))
    return path


def write_audioset_shards(folder: Path, num_files: int, num_good_per_file: int) -> list[Path]:
    """Several parquet shards (no broken clips), as the Hub serves AudioSet."""
    return [
        write_audioset_parquet(
            Path(folder) / f"train-{i:05d}-of-{num_files:05d}.parquet",
            num_good_per_file,
            prefix=f"shard{i}",
            with_bad=False,
        )
        for i in range(num_files)
    ]


def write_audiofolder(folder: Path, num_good: int) -> Path:
    """An audiofolder: FLAC files, one garbage file, and metadata.csv with AudioSet's id column."""
    folder = Path(folder)
    (folder / "train").mkdir(parents=True, exist_ok=True)
    lines = ["file_name,video_id"]
    for i in range(num_good):
        name = f"af-{i:04d}"
        (folder / "train" / f"{name}.flac").write_bytes(_encode(good_clip(i, clip_seconds_for(i))))
        lines.append(f"{name}.flac,{name}")
    (folder / "train" / f"{BAD_DECODE}.flac").write_bytes(b"garbage" * 50)
    lines.append(f"{BAD_DECODE}.flac,{BAD_DECODE}")
    (folder / "train" / "metadata.csv").write_text("\n".join(lines) + "\n")
    return folder
