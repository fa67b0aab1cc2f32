"""Pre-training's data at its edges: an empty split is a clear error at load time, and the model card (meant for the
Hub) names local data without its local path."""

import json

import pytest
from audioset_fixture import FEATURES, write_audiofolder
from test_pretraining import QUIET_RUN, TINY, main, one_thread_and_fresh_accelerate  # noqa: F401 - the fixture is autouse

from maskspec_hf import MaskSpecConfig
from maskspec_hf.cli.pretrain import parse_arguments
from maskspec_hf.data import EmptySplitError
from maskspec_hf.data.arguments import DataArguments
from maskspec_hf.model_card import render_model_card
from maskspec_hf.training.pretraining_report import describe_data


def tiny_args(tmp_path, *extra: str) -> list[str]:
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    return [
        "--config_name",
        str(tmp_path / "tiny.json"),
        "--cache_dir",
        str(tmp_path / "hf_cache"),
        "--max_length_seconds",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "1",
        *QUIET_RUN,
        *extra,
    ]


def test_an_empty_training_split_is_a_clear_error_at_load_time(tmp_path):
    from datasets import Dataset

    empty = tmp_path / "empty.parquet"
    Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES).to_parquet(str(empty))
    for streaming in ([], ["--streaming"]):
        with pytest.raises(EmptySplitError, match=rf"Split 'train' of the data files {empty} is empty"):
            main(tiny_args(tmp_path, "--data_files", str(empty), "--output_dir", str(tmp_path / "out"), *streaming))
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def test_the_model_card_of_a_local_folder_run_holds_no_local_path(tmp_path):
    folder = write_audiofolder(tmp_path / "my_sounds", num_good=7)
    output_dir = tmp_path / "out"
    main(tiny_args(tmp_path, "--data_dir", str(folder), "--output_dir", str(output_dir)))
    card = (output_dir / "final" / "README.md").read_text()
    assert str(tmp_path) not in card
    assert "- a local folder `my_sounds` (split train, 8 rows)" in card
    assert "datasets:" not in card.split("---")[1]


def parse(*argv: str) -> DataArguments:
    return parse_arguments(["--output_dir", "out", *argv])[1]


def test_local_data_is_described_by_name_and_hub_data_by_id(tmp_path):
    local = tmp_path / "corpus"
    local.mkdir()
    files = [str(tmp_path / "shards" / f"train-{i}.parquet") for i in range(7)]
    described = {
        "hub": describe_data(parse("--dataset_name", "agkphysics/AudioSet", "--dataset_config_name", "balanced")),
        "local dataset": describe_data(parse("--dataset_name", str(local)), dataset=[0] * 3),
        "files": describe_data(parse("--data_files", *files, "--train_split_name", "dev")),
    }
    assert described["hub"] == ["agkphysics/AudioSet (balanced)"]
    assert described["local dataset"] == ["a local dataset `corpus` (split train, 3 rows)"]
    assert described["files"] == [
        "local files: train-0.parquet, train-1.parquet, train-2.parquet, train-3.parquet, "
        "train-4.parquet and 2 more (split dev)"
    ]
    assert not any(str(tmp_path) in d for ds in described.values() for d in ds)


def test_render_model_card_never_publishes_local_paths(tmp_path):
    checkpoint = tmp_path / "runs" / "base-ckpt"
    checkpoint.mkdir(parents=True)
    config = MaskSpecConfig.from_preset("tiny", num_labels=2, id2label={0: "dog", 1: "cat"})
    card = render_model_card(
        config, task="audio-classification", base_model=str(checkpoint),
        datasets=["local folder: /home/someone/private/data", f"audiofolder ({tmp_path}/clips/)",
                  "agkphysics/AudioSet (balanced)"],
    )  # fmt: skip
    assert "/home/someone" not in card and str(tmp_path) not in card
    assert "- local folder: data" in card and "- audiofolder (clips)" in card and "fine-tuned from `base-ckpt`" in card
    assert "- agkphysics/AudioSet" in card.split("---")[1]
