"""One bad clip among good ones: every command skips it, counts it, names its file and keeps going.

The bad clips are real files: garbage bytes behind .wav and .flac suffixes, a zero-byte .wav and a float WAV holding
NaN samples, in audiofolders next to good clips.
"""

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch

from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForAudioClassification
from maskspec_hf.cli import classify as classify_cli
from maskspec_hf.cli import finetune as finetune_cli
from maskspec_hf.cli import probe as probe_cli
from maskspec_hf.data.classification import MaskSpecDataCollator
from maskspec_hf.evaluation.classify import classify
from maskspec_hf.evaluation.probe import probe
from maskspec_hf.training.finetuning import finetune


def finetune_main(argv: list[str]) -> dict:
    return finetune(*finetune_cli.parse_args(argv))


def probe_main(argv: list[str]) -> dict:
    return probe(*probe_cli.parse_args(argv))


def classify_main(argv: list[str]) -> list[dict]:
    return classify(*classify_cli.parse_args(argv))


RATE = 32000
CLASSES = {"high": 3000.0, "low": 300.0}
COMMON = ["--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--dataloader_pin_memory", "false"]


def tone(freq: float, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def write_bad_clips(folder: Path, tag: str) -> dict[str, str]:
    """Four unusable files in `folder`; returns {file name: the reason a command must give}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{tag}_garbage.wav").write_bytes(b"RIFF not really a wave file " * 40)
    (folder / f"{tag}_garbage.flac").write_bytes(bytes(range(256)) * 8)
    (folder / f"{tag}_empty.wav").write_bytes(b"")
    nan = tone(500.0)
    nan[100:200] = np.nan
    sf.write(folder / f"{tag}_nan.wav", nan, RATE, subtype="FLOAT")
    return {
        f"{tag}_garbage.wav": "decode_error",
        f"{tag}_garbage.flac": "decode_error",
        f"{tag}_empty.wav": ("empty", "decode_error"),
        f"{tag}_nan.wav": "non_finite",
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict]:
    """Folder-per-class audiofolder: train has 2 good clips per class and 4 bad ones, validation 1 good per class
    and 2 bad ones (garbage, NaN)."""
    root = tmp_path_factory.mktemp("bad_clips")
    bad = {}
    for split, count in (("train", 2), ("validation", 1)):
        for name, freq in CLASSES.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                sf.write(root / split / name / f"{name}_{i}.wav", tone(freq * (1 + 0.1 * i), seed=i), RATE)
        found = write_bad_clips(root / split / "low", split)
        if split == "validation":
            for name in (f"{split}_garbage.flac", f"{split}_empty.wav"):
                (root / split / "low" / name).unlink()
                del found[name]
        bad[split] = found
    return root, bad


def assert_reasons(skipped: list[dict], expected: dict[str, str]) -> None:
    by_file = {Path(clip["id"]).name: clip["reason"] for clip in skipped}
    assert set(by_file) == set(expected)
    for name, reason in by_file.items():
        assert reason in np.atleast_1d(expected[name]), (name, reason)


def test_finetune_skips_bad_clips_in_training_and_evaluation(folder, tmp_path, caplog):
    """Batches of one clip (so a bad clip is a batch of no clip) for one epoch, evaluation batches of four (so bad
    clips are dropped from batches that keep good ones)."""
    root, bad = folder
    out = tmp_path / "out"
    metrics = finetune_main(
        ["--model_name_or_path", "tiny", "--config_overrides", "num_hidden_layers=1,max_frames=100",
         "--data_dir", str(root), "--output_dir", str(out), "--do_train", "--do_eval",
         "--max_steps", "8", "--per_device_train_batch_size", "1", "--per_device_eval_batch_size", "4",
         "--mixup_alpha", "0"] + COMMON
    )  # fmt: skip
    assert metrics["train_clips_skipped"] == 4 and metrics["train_samples"] == 4
    assert metrics["eval_clips_skipped"] == 2 and metrics["eval_samples"] == 2
    assert np.isfinite(metrics["train_loss"]) and 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert_reasons([c for c in metrics["clips_skipped"] if c["split"] == "train"], bad["train"])
    assert_reasons([c for c in metrics["clips_skipped"] if c["split"] == "eval"], bad["validation"])
    assert json.loads((out / "clips_skipped.json").read_text()) == metrics["clips_skipped"]
    lines = [record.getMessage() for record in caplog.records]
    for name in bad["train"]:  # each one logged by file, once
        assert len([line for line in lines if "Skipping" in line and name in line]) == 1, name
    assert (out / "model.safetensors").exists()


def test_collator_drops_bad_rows_and_a_batch_of_only_bad_rows_is_empty():
    collator = MaskSpecDataCollator(MaskSpecFeatureExtractor())
    bad = {"audio": None, "clip": "x.wav", "skipped": "decode_error", "error": "cannot decode"}
    batch = collator([{"audio": tone(300.0), "labels": 1}, bad])
    assert batch["input_values"].shape[0] == 1 and batch["labels"].tolist() == [1]
    assert batch["skipped_clips"] == [{"id": "x.wav", "reason": "decode_error", "error": "cannot decode"}]
    empty = collator([bad, bad])
    assert empty["input_values"].shape[0] == 0 and empty["labels"].shape == (0,)
    assert len(empty["skipped_clips"]) == 2


def test_probe_skips_bad_clips_and_reports_them(folder, tmp_path):
    root, bad = folder
    result = probe_main(
        ["--model_name_or_path", "tiny", "--config_overrides", "num_hidden_layers=1,max_frames=100",
         "--data_dir", str(root), "--eval_split_name", "validation", "--output_file", str(tmp_path / "probe.json")]
    )  # fmt: skip
    assert result["train_examples"] == 4 and result["test_examples"] == 2 and result["clips_skipped"] == 6
    assert_reasons([c for c in result["skipped_clips"] if c["split"] == "train"], bad["train"])
    assert_reasons([c for c in result["skipped_clips"] if c["split"] == "validation"], bad["validation"])
    assert json.loads((tmp_path / "probe.json").read_text())["clips_skipped"] == 6


def test_probe_fails_clearly_when_every_clip_of_a_split_is_bad(tmp_path):
    for split in ("train", "test"):
        for name, freq in CLASSES.items():
            (tmp_path / split / name).mkdir(parents=True)
            sf.write(tmp_path / split / name / "good.wav", tone(freq), RATE)
    for path in (tmp_path / "test").rglob("good.wav"):
        path.write_bytes(b"garbage" * 50)
    with pytest.raises(ValueError, match=r"None of the 2 clips of the test split can be used \(e.g. .*good.wav"):
        probe_main(["--model_name_or_path", "tiny", "--config_overrides", "num_hidden_layers=1",
                    "--data_dir", str(tmp_path), "--eval_split_name", "test"])  # fmt: skip


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("classifier")
    config = MaskSpecConfig.from_preset(
        "tiny", num_hidden_layers=1, max_frames=100, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1}
    )
    MaskSpecForAudioClassification(config).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


def test_classify_writes_good_rows_and_an_error_per_bad_file(classifier_folder, tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, freq in enumerate((300.0, 900.0, 2000.0)):
        sf.write(clips / f"good_{i}.wav", tone(freq), RATE)
    bad = write_bad_clips(clips, "bad")
    sf.write(clips / "bad_short.wav", tone(300.0, seconds=0.02), RATE)  # shorter than one patch
    bad["bad_short.wav"] = "too_short"
    model = ["--model_name_or_path", str(classifier_folder), "--inputs", str(clips), "--no_progress", "--top_k", "2"]
    results = classify_main(model + ["--output_file", str(tmp_path / "out.csv"), "--batch_size", "3"])
    out = capsys.readouterr().out
    assert "top-2 labels of 3 clips" in out and "Skipped 5 of 8 clips" in out
    assert len(results) == 8
    assert_reasons([r for r in results if "error" in r], bad)
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {f"good_{i}.wav" for i in range(3)} | set(bad)
    for name, row in rows.items():
        if name.startswith("good"):
            assert row["label_1"] in ("a", "b") and row["error"] == ""
        else:
            assert row["label_1"] == "" and row["error"].split(":")[0] in np.atleast_1d(bad[name])
    # The JSON output (and a batch size that puts bad and good files in one batch another way) agrees.
    classify_main(model + ["--output_file", str(tmp_path / "out.json"), "--batch_size", "8"])
    entries = {Path(e["file"]).name: e for e in json.loads((tmp_path / "out.json").read_text())}
    assert all(("predictions" in e) == name.startswith("good") for name, e in entries.items())
    for name, row in rows.items():
        if name.startswith("good"):
            assert entries[name]["predictions"][0]["label"] == row["label_1"]


def test_classify_a_dataset_split_with_a_corrupt_row(classifier_folder, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], tone(300.0 * (i + 1)), RATE)
    paths[1].write_bytes(b"corrupt" * 100)
    dataset = datasets.Dataset.from_dict({"audio": [str(p) for p in paths], "video_id": ["y0", "y1", "y2"]})
    dataset = dataset.cast_column("audio", datasets.Audio())
    datasets.DatasetDict({"test": dataset}).save_to_disk(str(tmp_path / "ds"))
    output = tmp_path / "preds.json"
    classify_main(["--model_name_or_path", str(classifier_folder), "--dataset_name", str(tmp_path / "ds"),
                   "--eval_split_name", "test", "--output_file", str(output), "--id_column_name", "video_id",
                   "--no_progress"])  # fmt: skip
    data = json.loads(output.read_text())
    assert [d["video_id"] for d in data] == ["y0", "y1", "y2"]
    assert "predictions" in data[0] and "predictions" in data[2] and data[1]["reason"] == "decode_error"


def test_classify_fails_when_no_clip_could_be_classified_but_still_writes_the_errors(
    classifier_folder, tmp_path, capsys, monkeypatch
):
    clips = tmp_path / "clips"
    bad = write_bad_clips(clips, "bad")
    argv = ["--model_name_or_path", str(classifier_folder), "--inputs", str(clips), "--output_file",
            str(tmp_path / "o.json")]  # fmt: skip
    results = classify_main(argv)  # the function returns every error entry ...
    assert len(results) == 4 and all("error" in r for r in results)
    monkeypatch.delenv("MASKSPEC_TRACEBACK", raising=False)
    capsys.readouterr()
    assert classify_cli.main(argv) == 2  # ... and the command fails, with one line naming the cause
    err = capsys.readouterr().err
    assert "maskspec-classify: error: None of the 4 clips could be classified" in err and "Traceback" not in err
    assert {Path(e["file"]).name for e in json.loads((tmp_path / "o.json").read_text())} == set(bad)
