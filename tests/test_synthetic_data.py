# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Tests of the synthetic corpus (small clips and tmp_path caches keep them fast)."""

import itertools
import re

import numpy as np
import pytest
from datasets import Audio, ClassLabel, List, Value
from scipy import signal

from maskspec_hf.data import synthetic as synthetic_data
from maskspec_hf.data.synthetic import (
    BAND_PAIRINGS,
    HUMAN_LABELS,
    NUM_BANDS,
    SOUND_EVENT_TYPES,
    TEST_INDEX_OFFSET,
    TEXTURES,
    band_edges,
    band_texture,
    make_sound_events_dataset,
    make_sound_events_splits,
    synthesize_clip,
)


def _files(directory):
    return {path.name: path.stat().st_mtime_ns for path in directory.rglob("*") if path.is_file()}


def test_classes_are_the_pairings_of_a_one_factorization():
    assert len(SOUND_EVENT_TYPES) == NUM_BANDS - 1 == 7 and len(set(SOUND_EVENT_TYPES)) == 7
    assert set(HUMAN_LABELS) == set(SOUND_EVENT_TYPES) == set(BAND_PAIRINGS)
    seen = []
    for pairing in BAND_PAIRINGS.values():
        # A perfect matching: every band in exactly one pair.
        assert sorted(band for pair in pairing for band in pair) == list(range(NUM_BANDS))
        seen += [tuple(sorted(pair)) for pair in pairing]
    # Every pair of bands belongs to exactly one class.
    assert sorted(seen) == list(itertools.combinations(range(NUM_BANDS), 2))


def test_bands_follow_the_front_end_mel_patches():
    edges = band_edges(32000)
    assert edges.shape == (NUM_BANDS, 2) and (np.diff(edges.ravel()) > 0).all() and edges.max() < 15000
    # At 32 kHz each band lies inside one row of 16 of the 128 Kaldi mel bins up to 15 kHz.
    mel = 1127 * np.log1p(edges / 700) / (1127 * np.log1p(15000 / 700)) * 128
    assert (np.floor(mel[:, 0] / 16) == np.arange(NUM_BANDS)).all()
    assert (np.floor(mel[:, 1] / 16) == np.arange(NUM_BANDS)).all()
    assert band_edges(16000).max() < 0.45 * 16000


@pytest.mark.parametrize("texture", TEXTURES)
@pytest.mark.parametrize("sampling_rate", [16000, 32000])
def test_band_textures_stay_in_their_band(texture, sampling_rate):
    low, high = band_edges(sampling_rate)[3]
    first = band_texture(np.random.default_rng(0), texture, 8000, low, high, sampling_rate)
    again = band_texture(np.random.default_rng(0), texture, 8000, low, high, sampling_rate)
    other = band_texture(np.random.default_rng(1), texture, 8000, low, high, sampling_rate)
    assert first.shape == (8000,) and np.isfinite(first).all()
    np.testing.assert_allclose(np.sqrt(np.mean(first**2)), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other), "instances of a texture should vary"
    power = np.abs(np.fft.rfft(first * np.hanning(len(first)))) ** 2
    freqs = np.fft.rfftfreq(len(first), 1 / sampling_rate)
    inside = power[(freqs >= 0.9 * low) & (freqs <= 1.1 * high)].sum() / power.sum()
    assert inside > 0.95, inside
    with pytest.raises(ValueError, match="Unknown texture"):
        band_texture(np.random.default_rng(0), "thunder", 100, low, high, sampling_rate)


def test_synthesize_clip_is_deterministic():
    wave, meta = synthesize_clip(5, seed=1, clip_seconds=1.0)
    again, meta_again = synthesize_clip(5, seed=1, clip_seconds=1.0)
    np.testing.assert_array_equal(wave, again)
    assert meta == meta_again
    assert not np.array_equal(wave, synthesize_clip(6, seed=1, clip_seconds=1.0)[0])
    assert not np.array_equal(wave, synthesize_clip(5, seed=2, clip_seconds=1.0)[0])


def test_clip_waveforms_and_labels():
    classes = set()
    for index in range(40):
        wave, meta = synthesize_clip(index, clip_seconds=1.0, sampling_rate=16000)
        assert wave.dtype == np.float32 and wave.shape == (16000,)
        assert np.isfinite(wave).all() and 0 < np.abs(wave).max() <= 1
        (name,) = meta["labels"]
        assert meta["human_labels"] == [HUMAN_LABELS[name]] and SOUND_EVENT_TYPES[meta["label"]] == name
        assert 5 <= meta["snr_db"] <= 20
        assert meta["video_id"] == f"synth-{index:06d}"
        # Every pair of the class's pairing sounds, and nothing else does.
        pairs = {tuple(event["bands"]) for event in meta["events"]}
        assert pairs == set(BAND_PAIRINGS[name])
        for event in meta["events"]:
            assert 0 <= event["onset"] and event["onset"] + event["duration"] <= 1.0 + 1e-3
            assert set(event["textures"]) <= set(TEXTURES) and all(-9 <= v <= 0 for v in event["levels_db"])
        classes.add(name)
    assert classes == set(SOUND_EVENT_TYPES)


def test_forced_class():
    _, meta = synthesize_clip(0, clip_seconds=1.0, sampling_rate=16000, sound_class="pairing_3")
    assert meta["labels"] == ["pairing_3"] and meta["label"] == SOUND_EVENT_TYPES.index("pairing_3")
    with pytest.raises(ValueError, match="Unknown class"):
        synthesize_clip(0, sound_class="thunder")


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


def _band_energies(wave, sampling_rate):
    """`[bands, frames]` log energies of the corpus's bands (10 ms hop)."""
    freqs, _, spec = signal.stft(wave, sampling_rate, nperseg=512, noverlap=512 - sampling_rate // 100)
    power = np.abs(spec) ** 2
    return np.log(
        np.stack([power[(freqs >= lo) & (freqs <= hi)].sum(0) for lo, hi in band_edges(sampling_rate)]) + 1e-10
    )


def _nearest_centroid_accuracy(x, y, train):
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    centroids = np.stack([x[train & (y == label)].mean(0) for label in range(len(SOUND_EVENT_TYPES))])
    predicted = np.argmin(((x[~train, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return (predicted == y[~train]).mean()


def test_classes_differ_in_structure_not_in_average_spectrum():
    """Each band's mean and spread of level over time say nothing of the class (nearest centroid near chance, 1/7);
    the correlations between bands over time give it away."""
    sampling_rate, per_class, num_train = 16000, 16, 8
    marginal, structure, y = [], [], []
    for label, name in enumerate(SOUND_EVENT_TYPES):
        for j in range(per_class):
            wave, _ = synthesize_clip(1000 * label + j, 3, 2.0, sampling_rate, sound_class=name)
            energies = _band_energies(wave, sampling_rate)
            marginal.append(np.concatenate([energies.mean(1) - energies.mean(), energies.std(1)]))
            correlations = np.corrcoef(energies)
            structure.append(correlations[np.triu_indices(NUM_BANDS, 1)])
            y.append(label)
    y = np.array(y)
    train = np.tile(np.arange(per_class) < num_train, len(SOUND_EVENT_TYPES))
    by_marginals = _nearest_centroid_accuracy(np.array(marginal), y, train)
    by_structure = _nearest_centroid_accuracy(np.array(structure), y, train)
    assert by_marginals < 0.35, by_marginals
    assert by_structure > 0.8, by_structure
