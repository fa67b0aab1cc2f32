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
from maskspec_hf.data import (
    ClipProcessor,
    EmptySplitError,
    MapStyleBatches,
    SpectrogramCollator,
    StreamingBatches,
    decode_audio,
    epoch_indices,
    load_audio_dataset,
    min_samples_for_one_patch,
    prepare_audio_dataset,
    require_rows,
)


SR = 32000
NUM_GOOD = 8


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory):
    return write_audioset_parquet(tmp_path_factory.mktemp("audioset") / "balanced_train.parquet", NUM_GOOD)


@pytest.fixture(scope="module")
def extractor():
    return MaskSpecFeatureExtractor()


def make_processor(id_column="video_id", seconds=1.0, seed=0):
    return ClipProcessor(SR, int(seconds * SR), min_samples_for_one_patch(MaskSpecFeatureExtractor(), 16),
                         id_column=id_column, seed=seed)


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
    assert processor({"audio": {"bytes": buffer.getvalue(), "path": "e.wav"}, "video_id": "e"}, (0, 0))["skipped"] == "empty"
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
    assert batch["attention_mask"][0].all() and batch["attention_mask"][1].sum() == extractor.frames_for_samples(SR // 2)
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
    assert {r["id"]: r.get("skipped") for r in results} == {"af-0000": None, "af-0001": None, "af-0002": None,
                                                          "bad-garbage": "decode_error"}


def test_epoch_indices_split_rows_between_processes():
    parts = [epoch_indices(103, epoch=0, seed=1, rank=r, world_size=4) for r in range(4)]
    assert all(len(p) == 103 // 4 for p in parts)
    flat = np.concatenate(parts)
    assert len(set(flat.tolist())) == len(flat)  # no row on two processes
    np.testing.assert_array_equal(parts[0], epoch_indices(103, epoch=0, seed=1, rank=0, world_size=4))
    assert not np.array_equal(parts[0], epoch_indices(103, epoch=1, seed=1, rank=0, world_size=4))


def test_map_style_batches_resume_exactly(parquet_file, extractor):
    dataset, _ = prepare_audio_dataset(load_audio_dataset(data_files=[str(parquet_file)]))
    collator = SpectrogramCollator(extractor, 100, patch_size=16)

    def batches():
        return MapStyleBatches(dataset, make_processor(), collator, batch_size=3, seed=0, num_workers=0)

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
