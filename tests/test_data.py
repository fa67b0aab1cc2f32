"""Audio data for training: loading AudioSet-schema data, per-clip robust decoding, crop/pad, collation, sharding."""

import io
import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from audioset_fixture import (
    BAD_IDS,
    RATE,
    clip_seconds_for,
    good_clip,
    write_audiofolder,
    write_audioset_parquet,
    write_audioset_shards,
)
from datasets.distributed import split_dataset_by_node

from maskspec_hf import MaskSpecFeatureExtractor
from maskspec_hf.audio import decode_audio
from maskspec_hf.data.batching import MapStyleBatches, SpectrogramCollator, epoch_indices
from maskspec_hf.data.clips import ClipProcessor, first_valid_clip, min_samples_for_one_patch
from maskspec_hf.data.loading import EmptySplitError, load_audio_dataset, prepare_audio_dataset, require_rows
from maskspec_hf.data.spectrogram_cache import SpectrogramCache, estimated_spectrogram_bytes
from maskspec_hf.data.streaming_batches import StreamingBatches


SR = 32000
NUM_GOOD = 8


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory):
    return write_audioset_parquet(tmp_path_factory.mktemp("audioset") / "balanced_train.parquet", NUM_GOOD)


@pytest.fixture(scope="module")
def extractor():
    return MaskSpecFeatureExtractor()


def make_processor(id_column="video_id", seconds=1.0, seed=0):
    return ClipProcessor(
        SR,
        int(seconds * SR),
        min_samples_for_one_patch(MaskSpecFeatureExtractor(), 16),
        id_column=id_column,
        seed=seed,
    )


def test_audioset_schema_loads_and_bad_clips_are_skipped_with_their_ids(parquet_file, caplog):
    raw = load_audio_dataset(data_files=[str(parquet_file)])
    assert raw.column_names == ["video_id", "audio", "labels", "human_labels"]
    dataset, id_column = prepare_audio_dataset(raw)
    assert id_column == "video_id" and sorted(dataset.column_names) == ["audio", "video_id"]
    processor = make_processor()
    with caplog.at_level(logging.WARNING, logger="maskspec_hf.data"):
        clips = [processor(dataset[i], (0, i)) for i in range(len(dataset))]
    skipped = {c["id"]: c["skipped"] for c in clips if "skipped" in c}
    assert skipped == BAD_IDS
    for video_id, reason in BAD_IDS.items():
        assert any(video_id in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    good = [c for c in clips if "waveform" in c]
    assert len(good) == NUM_GOOD
    for clip in good:
        index = int(clip["id"].split("-")[1])
        expected = min(SR, round(clip_seconds_for(index) * SR))  # resampled 48 kHz -> 32 kHz, cropped to 1 s
        assert clip["waveform"].dtype == np.float32 and clip["waveform"].ndim == 1
        assert abs(len(clip["waveform"]) - expected) <= 2


def test_stereo_is_downmixed_and_resampled_by_datasets(tmp_path):
    stereo = good_clip(1, 0.5)  # odd index: [samples, 2], right channel = 0.5 * left
    assert stereo.ndim == 2
    buffer = io.BytesIO()
    sf.write(buffer, stereo, RATE, format="FLAC")
    wave = decode_audio({"bytes": buffer.getvalue(), "path": "x.flac"}, RATE)
    np.testing.assert_allclose(wave, stereo.mean(axis=1), atol=1e-4)  # FLAC is 16-bit
    resampled = decode_audio({"bytes": buffer.getvalue(), "path": "x.flac"}, SR)
    assert abs(len(resampled) - SR // 2) <= 2
    from_array = decode_audio({"array": stereo.T, "sampling_rate": RATE}, SR)
    assert abs(len(from_array) - SR // 2) <= 2


def test_header_only_wav_counts_as_empty_and_silence_is_valid():
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(0, dtype=np.float32), RATE, format="WAV")
    processor = make_processor()
    assert (
        processor({"audio": {"bytes": buffer.getvalue(), "path": "e.wav"}, "video_id": "e"}, (0, 0))["skipped"]
        == "empty"
    )
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(RATE, dtype=np.float32), RATE, format="WAV")
    silent = processor({"audio": {"bytes": buffer.getvalue(), "path": "s.wav"}, "video_id": "s"}, (0, 0))
    assert "waveform" in silent and not silent["waveform"].any()


def test_zero_byte_audio_file_counts_as_empty(tmp_path):
    folder = write_audiofolder(tmp_path / "af", num_good=1)
    (folder / "train" / "zero.flac").write_bytes(b"")
    (folder / "train" / "metadata.csv").write_text("file_name,video_id\naf-0000.flac,af-0000\nzero.flac,zero\n")
    (folder / "train" / "bad-garbage.flac").unlink()
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_dir=str(folder), cache_dir=str(tmp_path / "cache")))
    results = {r["id"]: r.get("skipped") for r in (make_processor()(dataset[i], (0, i)) for i in range(len(dataset)))}
    assert results == {"af-0000": None, "zero": "empty"}
    assert make_processor()({"audio": str(folder / "train" / "zero.flac")}, (0, 0))["skipped"] == "empty"


def test_an_empty_split_is_a_clear_error_naming_the_split_and_the_source(tmp_path, parquet_file):
    from audioset_fixture import FEATURES
    from datasets import Dataset

    empty = tmp_path / "empty.parquet"
    Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES).to_parquet(str(empty))
    for streaming in (False, True):
        with pytest.raises(EmptySplitError, match=rf"Split 'train' of the data files {empty} is empty \(no rows\)"):
            load_audio_dataset(data_files=[str(empty)], streaming=streaming, cache_dir=str(tmp_path / "cache"))
    dataset = load_audio_dataset(data_files=[str(parquet_file)])
    require_rows(dataset, "train", "x")  # not empty: no error
    with pytest.raises(EmptySplitError, match="Split 'train' of the first 0 rows is empty"):
        require_rows(dataset.select([]), "train", "the first 0 rows")


def test_random_crop_depends_only_on_seed_and_key(parquet_file):
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(parquet_file)]))
    row = dataset[0]  # 1.6 s, longer than the 1 s clip
    a, b = make_processor()(row, (0, 0)), make_processor()(row, (0, 0))
    np.testing.assert_array_equal(a["waveform"], b["waveform"])
    crops = {make_processor()(row, (epoch, 0))["waveform"][:50].tobytes() for epoch in range(6)}
    assert len(crops) > 1  # other epochs, other crops
    assert len(make_processor(seconds=2.0)(row, (0, 0))["waveform"]) == round(1.6 * SR)  # shorter: kept whole


def test_collator_pads_short_clips_masks_padding_and_draws_per_clip_noise(extractor):
    collator = SpectrogramCollator(extractor, num_frames=100, patch_size=16, seed=3)
    rng = np.random.default_rng(0)
    long = {"id": "a", "waveform": rng.standard_normal(SR).astype(np.float32) * 0.1, "key": (0, 1)}
    short = {"id": "b", "waveform": rng.standard_normal(SR // 2).astype(np.float32) * 0.1, "key": (0, 2)}
    bad = {"id": "c", "skipped": "decode_error", "error": "boom", "key": (0, 3)}
    batch = collator([long, bad, short])
    assert batch["ids"] == ["a", "b"] and batch["skipped"] == [("c", "decode_error", "boom")]
    assert batch["input_values"].shape == (2, 100, 128)
    assert batch["attention_mask"][0].all() and batch["attention_mask"][1].sum() == extractor.frames_for_samples(
        SR // 2
    )
    assert batch["noise"].shape == (2, (100 // 16) * (128 // 16))
    # A clip's features and noise do not depend on the rest of the batch.
    alone = collator([short])
    torch.testing.assert_close(alone["noise"][0], batch["noise"][1])
    n = int(alone["attention_mask"][0].sum())
    torch.testing.assert_close(alone["input_values"][0, :n], batch["input_values"][1, :n])
    empty = collator([bad])
    assert empty["input_values"].shape == (0, 100, 128) and empty["noise"].shape[0] == 0


def test_unknown_audio_column_lists_the_columns(parquet_file):
    raw = load_audio_dataset(data_files=[str(parquet_file)])
    with pytest.raises(ValueError, match="available columns: video_id, audio, labels, human_labels"):
        prepare_audio_dataset(raw, audio_column_name="sound")
    with pytest.raises(ValueError, match="--id_column_name 'ytid'"):
        prepare_audio_dataset(raw, id_column_name="ytid")


def test_audiofolder_via_data_dir(tmp_path):
    folder = write_audiofolder(tmp_path / "af", num_good=3)
    dataset, id_column = prepare_audio_dataset(load_audio_dataset(data_dir=str(folder)))
    assert id_column == "video_id" and len(dataset) == 4
    results = [make_processor()(dataset[i], (0, i)) for i in range(len(dataset))]
    assert {r["id"]: r.get("skipped") for r in results} == {
        "af-0000": None,
        "af-0001": None,
        "af-0002": None,
        "bad-garbage": "decode_error",
    }


def test_epoch_indices_split_rows_between_processes():
    parts = [epoch_indices(103, epoch=0, seed=1, rank=r, world_size=4) for r in range(4)]
    assert all(len(p) == 103 // 4 for p in parts)
    flat = np.concatenate(parts)
    assert len(set(flat.tolist())) == len(flat)  # no row on two processes
    np.testing.assert_array_equal(parts[0], epoch_indices(103, epoch=0, seed=1, rank=0, world_size=4))
    assert not np.array_equal(parts[0], epoch_indices(103, epoch=1, seed=1, rank=0, world_size=4))


@pytest.mark.parametrize("cached", [False, True], ids=["decoded-crops", "spectrogram-cache"])
def test_map_style_batches_resume_exactly(parquet_file, extractor, cached):
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(parquet_file)]))
    collator = SpectrogramCollator(extractor, 100, patch_size=16)

    def batches():  # a resumed run starts with an empty cache
        cache = SpectrogramCache(extractor, make_processor(), 100, max_bytes=2**30) if cached else None
        return MapStyleBatches(dataset, make_processor(), collator, batch_size=3, seed=0, num_workers=0, cache=cache)

    straight = batches()
    reference = [straight.next_batch() for _ in range(7)]  # 12 rows / 3 = 4 batches per epoch: crosses an epoch
    first = batches()
    for _ in range(3):
        first.next_batch()
    resumed = batches()
    resumed.load_state_dict(first.state_dict())
    for expected in reference[3:]:
        got = resumed.next_batch()
        assert got["ids"] == expected["ids"]
        torch.testing.assert_close(got["input_values"], expected["input_values"])
        torch.testing.assert_close(got["noise"], expected["noise"])
    assert sum(len(b["skipped"]) for b in reference[:4]) == len(BAD_IDS)  # each bad clip once per epoch


def test_cached_crops_are_frames_of_the_whole_clip_spectrogram_whatever_the_cache_holds(parquet_file, extractor):
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(parquet_file)]))
    collator = SpectrogramCollator(extractor, 100, patch_size=16)
    caches = {"all": SpectrogramCache(extractor, make_processor(), 100, 2**30)}
    # Nothing fits in "none": every visit featurizes the clip again.
    caches["none"] = SpectrogramCache(extractor, make_processor(), 100, max_bytes=0)
    runs = {}
    for name, cache in caches.items():
        batches = MapStyleBatches(dataset, make_processor(), collator, 3, seed=0, num_workers=0, cache=cache)
        runs[name] = [batches.next_batch() for _ in range(8)]  # 4 batches per epoch: two epochs
    for held, recomputed in zip(runs["all"], runs["none"]):
        assert held["ids"] == recomputed["ids"] and held["skipped"] == recomputed["skipped"]
        assert torch.equal(held["input_values"], recomputed["input_values"])
        assert torch.equal(held["attention_mask"], recomputed["attention_mask"])
        assert torch.equal(held["noise"], recomputed["noise"])
    rows = len(dataset)
    assert caches["all"].decoded == rows and len(caches["all"].entries) == rows  # each clip once, bad ones too
    # Without room, the good clips are featurized at each visit; the bad ones' skip records are still held.
    assert caches["none"].decoded == rows + NUM_GOOD and caches["none"].held_bytes == 0
    for epoch in (runs["all"][:4], runs["all"][4:]):  # a bad clip is skipped and counted at every visit
        assert sorted(r for b in epoch for _, r, _ in b["skipped"]) == sorted(BAD_IDS.values())

    # Each crop is 100 consecutive frames of the extractor's own spectrogram of the whole clip (float16), a
    # shorter clip whole and padded; crops differ between epochs.
    by_id = {row["video_id"]: row for row in dataset}
    starts = {}
    for batch in runs["all"]:
        for i, clip_id in enumerate(batch["ids"]):
            whole = decode_audio(by_id[clip_id]["audio"], SR)
            full = extractor(whole, sampling_rate=SR, return_tensors="pt")["input_values"][0].half().float()
            frames = int(batch["attention_mask"][i].sum())
            assert frames == min(100, full.shape[0])
            crop = batch["input_values"][i, :frames]
            matches = [s for s in range(full.shape[0] - frames + 1) if torch.equal(full[s : s + frames], crop)]
            assert matches, clip_id
            assert (batch["input_values"][i, frames:] == extractor.padding_value).all()
            starts.setdefault(clip_id, set()).add(matches[0])
    assert any(len(s) > 1 for s in starts.values())


def test_the_cache_size_estimate_follows_the_clip_lengths(parquet_file, extractor):
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(parquet_file)]))
    estimate = estimated_spectrogram_bytes(dataset, make_processor(), extractor, seed=0)
    good = [decode_audio(row["audio"], SR) for row in dataset if row["video_id"] not in BAD_IDS]
    frames = sum(extractor.frames_for_samples(w.size) for w in good)  # bad clips count as empty
    assert estimate == pytest.approx(frames * extractor.feature_size * 2)


def _stream_ids(stream, num_batches):
    return [stream.next_batch()["ids"] for _ in range(num_batches)]


def test_streaming_is_split_between_processes_and_workers_and_resumes(tmp_path, extractor):
    files = write_audioset_shards(tmp_path / "shards", num_files=4, num_good_per_file=3)
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(f) for f in files], streaming=True))
    collator = SpectrogramCollator(extractor, 100, patch_size=16)

    def stream(rank, world_size=2):
        part = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
        return StreamingBatches(part, make_processor(), collator, batch_size=2, rank=rank, num_workers=2)

    # One epoch per process: 2 shards of 3 rows, one shard per worker, batches of 2 (then 1) rows.
    seen = {}
    for rank in range(2):
        batches = _stream_ids(stream(rank), 4)
        seen[rank] = [i for ids in batches for i in ids]
        assert len(seen[rank]) == 6 and len(set(seen[rank])) == 6
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == {f"shard{s}-{i:04d}" for s in range(4) for i in range(3)}

    # Resuming from the state after 2 batches continues exactly as the uninterrupted stream.
    reference = _stream_ids(stream(0), 6)  # runs into the next epoch
    first = stream(0)
    _stream_ids(first, 2)
    resumed = stream(0)
    resumed.load_state_dict(first.state_dict())
    assert _stream_ids(resumed, 4) == reference[2:]
    assert resumed.epoch == 1


def test_first_valid_clip_skips_bad_rows_and_takes_the_start(parquet_file):
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(parquet_file)]))
    clip = first_valid_clip(dataset, make_processor())
    assert clip["id"] == "clip-0000"
    fixed = make_processor()(dataset[0], (0, 0))  # a random crop of the same 1.6 s clip: another window
    assert len(clip["waveform"]) == len(fixed["waveform"]) == SR
    start = ClipProcessor(SR, SR, 1, id_column="video_id", random_crop=False)(dataset[0], (0, 0))
    np.testing.assert_array_equal(clip["waveform"], start["waveform"])


# ----------------------------------------------------------------------------------------------------------------------
# Train and eval splits (fine-tuning, probing)
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """A folder-per-class audiofolder with train and validation splits (labels become a ClassLabel)."""
    root = tmp_path_factory.mktemp("classes")
    for split, count in (("train", 4), ("validation", 2)):
        for index, name in enumerate(("low", "high")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                sf.write(folder / f"{name}_{i}.wav", good_clip(2 * index, 0.5), RATE)
    return root


def test_load_splits_keeps_class_labels_and_cuts_to_sample_limits(class_folders):
    from datasets import ClassLabel

    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.data.loading import load_splits

    train, evaluation = load_splits(DataArguments(data_dir=str(class_folders)))
    assert (len(train), len(evaluation)) == (8, 4)
    assert isinstance(train.features["label"], ClassLabel) and train.features["label"].names == ["high", "low"]
    train, evaluation = load_splits(
        DataArguments(data_dir=str(class_folders), max_train_samples=3, max_eval_samples=1)
    )
    assert (len(train), len(evaluation)) == (3, 1)
    train, evaluation = load_splits(DataArguments(data_dir=str(class_folders)), need_eval=False)
    assert len(train) == 8 and evaluation is None
    train, evaluation = load_splits(DataArguments(data_dir=str(class_folders)), need_train=False)
    assert train is None and len(evaluation) == 4


def test_load_splits_holds_out_part_of_train_when_the_eval_split_is_missing(class_folders):
    from datasets import Audio

    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.data.loading import load_splits

    args = DataArguments(data_dir=str(class_folders), eval_split_name="dev", validation_split_percentage=25)
    train, evaluation = load_splits(args, seed=3)
    assert (len(train), len(evaluation)) == (6, 2)

    def paths(split):
        return [a["path"] for a in split.cast_column("audio", Audio(decode=False))["audio"]]

    assert paths(load_splits(args, seed=3)[1]) == paths(evaluation)  # the hold-out is drawn from the seed
    assert not set(paths(train)) & set(paths(evaluation))
    with pytest.raises(ValueError, match=r"--eval_split_name 'dev' is not a split .*\['train', 'validation'\]"):
        load_splits(DataArguments(data_dir=str(class_folders), eval_split_name="dev"))
    with pytest.raises(ValueError, match=r"--train_split_name 'nope' is not a split"):
        load_splits(DataArguments(data_dir=str(class_folders), train_split_name="nope"))


def test_load_splits_names_a_missing_column_and_an_empty_split(class_folders):
    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.data.loading import load_splits

    with pytest.raises(ValueError, match=r"--label_column_name 'genre' is not a column .*\['audio', 'label'\]"):
        load_splits(DataArguments(data_dir=str(class_folders), label_column_name="genre"))
    with pytest.raises(ValueError, match="--audio_column_name 'sound' is not a column"):
        load_splits(DataArguments(data_dir=str(class_folders), audio_column_name="sound"))
    with pytest.raises(ValueError, match="training split 'train' has no rows after --max_train_samples 0"):
        load_splits(DataArguments(data_dir=str(class_folders), max_train_samples=0))
    with pytest.raises(ValueError, match="evaluation split 'validation' has no rows after --max_eval_samples 0"):
        load_splits(DataArguments(data_dir=str(class_folders), max_eval_samples=0))


def test_save_to_disk_folders_and_data_files_load_through_the_same_front(class_folders, parquet_file, tmp_path):
    from datasets import load_dataset

    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.data.loading import load_audio_split, load_splits

    load_dataset("audiofolder", data_dir=str(class_folders)).save_to_disk(str(tmp_path / "saved"))
    train, evaluation = load_splits(DataArguments(dataset_name=str(tmp_path / "saved")))
    assert (len(train), len(evaluation)) == (8, 4) and train.features["label"].names == ["high", "low"]
    assert len(load_audio_dataset(dataset_name=str(tmp_path / "saved"), split="validation")) == 4
    streamed = load_audio_dataset(dataset_name=str(tmp_path / "saved"), streaming=True)
    assert sum(1 for _ in streamed) == 8
    with pytest.raises(ValueError, match=r"Cannot load split 'dev' .*\['train', 'validation'\].*--train_split_name"):
        load_audio_dataset(dataset_name=str(tmp_path / "saved"), split="dev")
    for source in ({"dataset_name": str(tmp_path / "saved")}, {"data_dir": str(class_folders)}):
        with pytest.raises(ValueError, match=r"Cannot load split 'dev' .*--eval_split_name"):
            load_audio_split(DataArguments(eval_split_name="dev", **source), split="dev")
    train, evaluation = load_splits(
        DataArguments(data_files=[str(parquet_file)], label_column_name="labels", validation_split_percentage=25)
    )
    assert (len(train), len(evaluation)) == (9, 3) and train.column_names[0] == "video_id"


def test_load_splits_uses_the_built_in_corpus_when_no_data_is_named(tmp_path, monkeypatch):
    from datasets import ClassLabel

    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.data.loading import load_splits

    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(tmp_path))
    args = DataArguments(synthetic_num_clips=8, synthetic_clip_seconds=0.5, validation_split_percentage=25)
    train, evaluation = load_splits(args)
    assert (len(train), len(evaluation)) == (6, 2) and isinstance(train.features["label"], ClassLabel)
    with pytest.raises(ValueError, match="--streaming is for pre-training"):
        load_splits(DataArguments(streaming=True))
