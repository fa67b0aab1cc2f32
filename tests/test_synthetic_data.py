# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Tests of the synthetic sound-events corpus (small clips and tmp_path caches keep them fast)."""

import re

import numpy as np
import pytest
from datasets import Audio, ClassLabel, List, Value
from scipy import signal

from maskspec_hf.data import synthetic as synthetic_data
from maskspec_hf.data.synthetic import (
    EVENT_GENERATORS,
    HUMAN_LABELS,
    SOUND_EVENT_TYPES,
    TEST_INDEX_OFFSET,
    make_sound_events_dataset,
    make_sound_events_splits,
    synthesize_clip,
)


def _files(directory):
    return {path.name: path.stat().st_mtime_ns for path in directory.rglob("*") if path.is_file()}


def test_event_types():
    assert len(SOUND_EVENT_TYPES) >= 10
    assert len(set(SOUND_EVENT_TYPES)) == len(SOUND_EVENT_TYPES)
    assert set(HUMAN_LABELS) == set(SOUND_EVENT_TYPES) == set(EVENT_GENERATORS)


@pytest.mark.parametrize("name", SOUND_EVENT_TYPES)
@pytest.mark.parametrize("sampling_rate", [16000, 32000])
def test_event_generator(name, sampling_rate):
    generate = EVENT_GENERATORS[name]
    first = generate(np.random.default_rng(0), 0.7, sampling_rate)
    again = generate(np.random.default_rng(0), 0.7, sampling_rate)
    other = generate(np.random.default_rng(1), 0.7, sampling_rate)
    assert first.dtype == np.float32 and first.shape == (round(0.7 * sampling_rate),)
    assert np.isfinite(first).all() and np.abs(first).max() > 0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other), "instances of an event type should vary"


def test_synthesize_clip_is_deterministic():
    wave, meta = synthesize_clip(5, seed=1, clip_seconds=1.0)
    again, meta_again = synthesize_clip(5, seed=1, clip_seconds=1.0)
    np.testing.assert_array_equal(wave, again)
    assert meta == meta_again
    assert not np.array_equal(wave, synthesize_clip(6, seed=1, clip_seconds=1.0)[0])
    assert not np.array_equal(wave, synthesize_clip(5, seed=2, clip_seconds=1.0)[0])


def test_clip_waveforms_and_labels():
    counts = set()
    for index in range(24):
        wave, meta = synthesize_clip(index, clip_seconds=1.0, sampling_rate=16000)
        assert wave.dtype == np.float32 and wave.shape == (16000,)
        assert np.isfinite(wave).all() and 0 < np.abs(wave).max() <= 1
        labels = meta["labels"]
        assert labels == sorted(set(labels)) and set(labels) <= set(SOUND_EVENT_TYPES) and 1 <= len(labels) <= 3
        assert meta["human_labels"] == [HUMAN_LABELS[name] for name in labels]
        assert SOUND_EVENT_TYPES[meta["label"]] in labels
        assert 0 <= meta["snr_db"] <= 20
        assert meta["video_id"] == f"synth-{index:06d}"
        assert sorted(event["type"] for event in meta["events"]) == labels
        for event in meta["events"]:
            assert 0 <= event["onset"] and event["onset"] + event["duration"] <= 1.0 + 1e-3
        counts.add(len(labels))
    assert counts == {1, 2, 3}


def test_dominant_label_is_the_loudest_event():
    # Equal durations are not guaranteed, so compare energy = power x duration of the events as placed.
    for index in range(12):
        _, meta = synthesize_clip(index, clip_seconds=1.0, sampling_rate=8000)
        energies = {e["type"]: 10 ** (e["level_db"] / 10) * e["duration"] for e in meta["events"]}
        assert SOUND_EVENT_TYPES[meta["label"]] == max(energies, key=energies.get)


def test_forced_event_types():
    _, meta = synthesize_clip(0, clip_seconds=1.0, sampling_rate=16000, event_types=["siren", "bird"])
    assert meta["labels"] == ["bird", "siren"]
    with pytest.raises(ValueError, match="Unknown event types"):
        synthesize_clip(0, event_types=["thunder"])


def test_dataset_is_audioset_compatible(tmp_path):
    ds = make_sound_events_dataset(12, seed=0, clip_seconds=2.0, cache_dir=tmp_path)
    assert len(ds) == 12
    assert ds.features["audio"] == Audio(sampling_rate=32000)
    assert ds.features["video_id"] == Value("string")
    assert ds.features["labels"] == ds.features["human_labels"] == List(Value("string"))
    assert ds.features["label"] == ClassLabel(names=list(SOUND_EVENT_TYPES))
    assert ds.features["snr_db"] == Value("float32")
    assert all(re.fullmatch(r"synth-\d{6}", vid) for vid in ds["video_id"])

    row = ds[3]
    wave, meta = synthesize_clip(3, seed=0, clip_seconds=2.0)
    assert row["labels"] == meta["labels"] and row["human_labels"] == meta["human_labels"]
    assert row["label"] == meta["label"] and ds.features["label"].int2str(row["label"]) in row["labels"]
    samples = row["audio"].get_all_samples()
    assert samples.sample_rate == 32000 and tuple(samples.data.shape) == (1, 64000)
    decoded = samples.data[0].numpy()
    assert np.isfinite(decoded).all() and np.abs(decoded).max() <= 1
    np.testing.assert_allclose(decoded, wave, atol=2 / 2**15)  # 16-bit quantization

    # Resampling on decode works as it does for Hub datasets.
    resampled = ds.cast_column("audio", Audio(sampling_rate=16000))[0]["audio"].get_all_samples()
    assert resampled.sample_rate == 16000 and resampled.data.shape[-1] == 32000


def test_cache_is_reused(tmp_path):
    make_sound_events_dataset(6, clip_seconds=1.0, cache_dir=tmp_path)
    before = _files(tmp_path)
    assert len(before) == 7  # six clips and the manifest, no temporary leftovers
    ds = make_sound_events_dataset(6, clip_seconds=1.0, cache_dir=tmp_path)
    assert _files(tmp_path) == before
    assert len(ds) == 6
    # Different parameters get their own folder.
    make_sound_events_dataset(6, seed=1, clip_seconds=1.0, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_interrupted_generation_is_not_taken_for_a_cache(tmp_path, monkeypatch):
    real = synthetic_data.synthesize_clip

    def failing(index, *args, **kwargs):
        if index == 3:
            raise KeyboardInterrupt
        return real(index, *args, **kwargs)

    monkeypatch.setattr(synthetic_data, "synthesize_clip", failing)
    with pytest.raises(KeyboardInterrupt):
        make_sound_events_dataset(6, clip_seconds=1.0, cache_dir=tmp_path, num_proc=1)
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, temporary folder removed
    monkeypatch.undo()

    # A temporary folder left behind by a killed process, and a final folder that lost its manifest, are both ignored.
    make_sound_events_dataset(6, clip_seconds=1.0, cache_dir=tmp_path)
    (final,) = tmp_path.iterdir()
    leftover = tmp_path / f".tmp-{final.name}-deadbeef"
    leftover.mkdir()
    (leftover / "synth-000000.wav").write_bytes(b"partial")
    (final / "manifest.json").unlink()
    (final / "synth-000005.wav").unlink()

    ds = make_sound_events_dataset(6, clip_seconds=1.0, cache_dir=tmp_path)
    assert (final / "manifest.json").is_file() and (final / "synth-000005.wav").is_file()
    paths = [audio["path"] for audio in ds.cast_column("audio", Audio(decode=False))["audio"]]
    assert all(path.startswith(str(final)) for path in paths)
    assert ds[0]["audio"].get_all_samples().data.shape[-1] == 32000


def test_parallel_generation_matches_serial(tmp_path):
    serial = make_sound_events_dataset(4, clip_seconds=0.5, cache_dir=tmp_path / "serial", num_proc=1)
    parallel = make_sound_events_dataset(4, clip_seconds=0.5, cache_dir=tmp_path / "parallel", num_proc=2)
    assert serial.remove_columns("audio").to_list() == parallel.remove_columns("audio").to_list()
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a["audio"].get_all_samples().data, b["audio"].get_all_samples().data)


def test_splits_are_disjoint(tmp_path):
    splits = make_sound_events_splits(5, 3, clip_seconds=0.5, sampling_rate=16000, cache_dir=tmp_path)
    assert set(splits) == {"train", "test"}
    assert len(splits["train"]) == 5 and len(splits["test"]) == 3
    assert not set(splits["train"]["video_id"]) & set(splits["test"]["video_id"])
    assert splits["test"][0]["video_id"] == f"synth-{TEST_INDEX_OFFSET:06d}"
    # The test split does not depend on the size of the training split.
    other = make_sound_events_splits(2, 3, clip_seconds=0.5, sampling_rate=16000, cache_dir=tmp_path)
    assert other["test"]["video_id"] == splits["test"]["video_id"]


def test_event_types_are_separable():
    """Nearest-centroid on simple log-spectrum statistics of single-event clips beats chance clearly."""
    sampling_rate, per_class, num_train = 16000, 14, 7
    freqs = np.fft.rfftfreq(512, 1 / sampling_rate)
    edges = np.geomspace(50, 7500, 33)
    bands = [(freqs >= low) & (freqs < high) for low, high in zip(edges[:-1], edges[1:])]

    def features(wave):
        power = np.abs(signal.stft(wave, sampling_rate, nperseg=512, noverlap=256)[2]) ** 2
        logspec = np.log(np.stack([power[band].sum(0) for band in bands]) + 1e-10)
        logspec = logspec[:, logspec.max(0) >= np.median(logspec.max(0))]  # the louder half: mostly the event
        # Spectral shape (level removed), its variation over time and frame-to-frame change.
        return np.concatenate(
            [logspec.mean(1) - logspec.mean(), logspec.std(1), np.abs(np.diff(logspec, axis=1)).mean(1)]
        )

    x, y = [], []
    for label, name in enumerate(SOUND_EVENT_TYPES):
        for j in range(per_class):
            wave, _ = synthesize_clip(1000 * label + j, 3, 1.0, sampling_rate, event_types=[name])
            x.append(features(wave))
            y.append(label)
    x, y = np.array(x), np.array(y)
    train = np.tile(np.arange(per_class) < num_train, len(SOUND_EVENT_TYPES))
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    centroids = np.stack([x[train & (y == label)].mean(0) for label in range(len(SOUND_EVENT_TYPES))])
    predicted = np.argmin(((x[~train, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == y[~train]).mean()
    assert accuracy > 3.5 / len(SOUND_EVENT_TYPES), accuracy  # chance is 1/12; this gets about 0.5
