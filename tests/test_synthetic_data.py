# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Tests of the synthetic corpus (small clips and tmp_path caches keep them fast)."""

import re

import numpy as np
import pytest
from datasets import Audio, ClassLabel, List, Value
from scipy import signal

from maskspec_hf.data import synthetic as synthetic_data
from maskspec_hf.data.synthetic import (
    HUMAN_LABELS,
    SOUND_EVENT_TYPES,
    TEST_INDEX_OFFSET,
    VOWEL_FORMANTS,
    WORDS,
    formant_tracks,
    make_sound_events_dataset,
    make_sound_events_splits,
    synthesize_clip,
    synthesize_word,
)


def _files(directory):
    return {path.name: path.stat().st_mtime_ns for path in directory.rglob("*") if path.is_file()}


def test_classes_are_vowel_pairs_in_both_orders():
    assert len(SOUND_EVENT_TYPES) == len(WORDS) == 8 and set(HUMAN_LABELS) == set(SOUND_EVENT_TYPES)
    assert all(set(vowels) <= set(VOWEL_FORMANTS) and vowels[0] != vowels[1] for vowels in WORDS.values())
    # Every word's reverse is a class too, so each vowel pair comes in both orders.
    assert {(b, a) for a, b in WORDS.values()} == set(WORDS.values())
    assert HUMAN_LABELS["a-i"] == "Vowel /a/ gliding into /i/"


def test_formant_tracks_glide_from_the_first_vowel_to_the_second():
    times = np.linspace(0.0, 0.5, 101)
    tracks = formant_tracks(("a", "i"), (0.2, 0.1, 0.2), 1.1, times)
    assert tracks.shape == (3, 101)
    first, second = (np.array(VOWEL_FORMANTS[v])[:, None] * 1.1 for v in ("a", "i"))
    np.testing.assert_allclose(tracks[:, times <= 0.2], np.broadcast_to(first, (3, (times <= 0.2).sum())))
    np.testing.assert_allclose(tracks[:, times >= 0.3], np.broadcast_to(second, (3, (times >= 0.3).sum())))
    # In between, every formant moves monotonically from one vowel to the other.
    glide = np.diff(tracks[:, (times >= 0.2) & (times <= 0.3)], axis=1)
    assert ((glide <= 0).all(axis=1) | (glide >= 0).all(axis=1)).all()


def _second_formant_hz(wave, sampling_rate, start, stop):
    """Power-weighted mean frequency over 700-3500 Hz of `wave[start:stop]`, where the second formants of the
    vowels lie."""
    segment = wave[start:stop] * np.hanning(stop - start)
    power = np.abs(np.fft.rfft(segment)) ** 2
    freqs = np.fft.rfftfreq(len(segment), 1 / sampling_rate)
    band = (freqs >= 700) & (freqs <= 3500)
    return (power[band] * freqs[band]).sum() / power[band].sum()


@pytest.mark.parametrize("sampling_rate", [16000, 32000])
def test_a_word_is_voiced_and_glides_the_way_its_vowels_go(sampling_rate):
    speaker = {"f0_hz": 120.0, "formant_scale": 1.0, "rate": 1.0}
    wave, duration = synthesize_word(np.random.default_rng(0), ("a", "i"), speaker, sampling_rate)
    again, _ = synthesize_word(np.random.default_rng(0), ("a", "i"), speaker, sampling_rate)
    np.testing.assert_array_equal(wave, again)
    assert len(wave) == round(duration * sampling_rate) and 0.3 <= duration <= 0.56
    assert np.isfinite(wave).all() and np.isclose(np.abs(wave).max(), 1.0)
    quarter = len(wave) // 4
    early, late = (_second_formant_hz(wave, sampling_rate, i, i + quarter) for i in (0, 3 * quarter))
    assert late - early > 300, (early, late)  # /a/'s F2 is ~1090 Hz, /i/'s ~2290 Hz
    reverse, _ = synthesize_word(np.random.default_rng(0), ("i", "a"), speaker, sampling_rate)
    quarter = len(reverse) // 4
    early, late = (_second_formant_hz(reverse, sampling_rate, i, i + quarter) for i in (0, 3 * quarter))
    assert early - late > 300, (early, late)
    # Voiced: the spectrum has its peaks at the harmonics of f0, and nothing above the top harmonic.
    power = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / sampling_rate)
    assert power[freqs > min(7200, 0.47 * sampling_rate)].sum() < 1e-3 * power.sum()


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
        assert 5 <= meta["snr_db"] <= 25
        assert meta["video_id"] == f"synth-{index:06d}"
        # Two or three utterances of the word by one speaker, each starting inside the clip.
        events = meta["events"]
        assert 2 <= len(events) <= 3 and len({e["formant_scale"] for e in events}) == 1
        for event in events:
            assert 0 <= event["onset"] < 1.0 and 0.24 <= event["duration"] <= 0.7 and -6 <= event["level_db"] <= 0
            assert 80 <= event["f0_hz"] <= 315 and 0.82 <= event["formant_scale"] <= 1.22
            assert 0.8 <= event["rate"] <= 1.25
        classes.add(name)
    assert classes == set(SOUND_EVENT_TYPES)


def test_forced_class():
    _, meta = synthesize_clip(0, clip_seconds=1.0, sampling_rate=16000, sound_class="i-a")
    assert meta["labels"] == ["i-a"] and meta["label"] == SOUND_EVENT_TYPES.index("i-a")
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


def _log_spectrogram(wave, sampling_rate):
    """`[frequencies, frames]` log power (10 ms hop)."""
    _, _, spec = signal.stft(wave, sampling_rate, nperseg=512, noverlap=512 - sampling_rate // 100)
    return np.log(np.abs(spec) ** 2 + 1e-10)


def _nearest_centroid_accuracy(x, y, train):
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    centroids = np.stack([x[train & (y == label)].mean(0) for label in (0, 1)])
    predicted = np.argmin(((x[~train, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return (predicted == y[~train]).mean()


def test_the_two_orders_of_a_vowel_pair_share_their_average_spectrum():
    """A word and its reverse ("a-i", "i-a"): each frequency's mean and spread of level over the clip leave them
    near chance (1/2), while the second formant early and late in the first utterance tells them apart."""
    sampling_rate, per_class, num_train = 16000, 40, 20
    marginal, order, y = [], [], []
    for label, name in enumerate(("a-i", "i-a")):
        for j in range(per_class):
            wave, meta = synthesize_clip(1000 * label + j, 3, 1.5, sampling_rate, sound_class=name)
            spectrogram = _log_spectrogram(wave, sampling_rate)
            marginal.append(np.concatenate([spectrogram.mean(1), spectrogram.std(1)]))
            start = int(meta["events"][0]["onset"] * sampling_rate)
            quarter = int(meta["events"][0]["duration"] * sampling_rate) // 4
            stop = min(len(wave), start + 4 * quarter)
            late = _second_formant_hz(wave, sampling_rate, stop - quarter, stop)
            order.append([late - _second_formant_hz(wave, sampling_rate, start, start + quarter)])
            y.append(label)
    y = np.array(y)
    train = np.tile(np.arange(per_class) < num_train, 2)
    by_marginals = _nearest_centroid_accuracy(np.array(marginal), y, train)
    by_order = _nearest_centroid_accuracy(np.array(order), y, train)
    assert by_marginals < 0.7, by_marginals
    assert by_order > 0.9, by_order
