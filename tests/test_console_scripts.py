"""The installed console scripts: exit status 0 on a real (tiny) run, 2 with a one-line message on a user error."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForAudioClassification


RATE = 32000
TINY = ["--model_name_or_path", "tiny", "--config_overrides", "num_hidden_layers=1,max_frames=100"]
TRAINER = [
    "--report_to",
    "none",
    "--save_strategy",
    "no",
    "--disable_tqdm",
    "true",
    "--dataloader_pin_memory",
    "false",
]


def run(script: str, *args) -> subprocess.CompletedProcess:
    path = shutil.which(script)
    assert path is not None, f"{script} is not installed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("MASKSPEC_TRACEBACK", None)
    return subprocess.run([path, *map(str, args)], capture_output=True, text=True, env=env)


def assert_user_error(result: subprocess.CompletedProcess, script: str, message: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{script}: error: " in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def tone(freq: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tones")
    for split in ("train", "test"):
        for name, freq in (("high", 3000.0), ("low", 300.0)):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                sf.write(root / split / name / f"{name}_{i}.wav", tone(freq * (1 + 0.1 * i)), RATE)
    return root


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("classifier")
    config = MaskSpecConfig.from_preset("tiny", num_hidden_layers=1, max_frames=100, num_labels=2)
    MaskSpecForAudioClassification(config).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


def test_classify_succeeds_with_status_0(classifier_folder, data_dir, tmp_path):
    output = tmp_path / "labels.json"
    result = run("maskspec-classify", "--model_name_or_path", classifier_folder, "--inputs", data_dir / "test",
                 "--output_file", output, "--no_progress")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads(output.read_text())) == 4


def test_classify_missing_input_is_status_2(classifier_folder, tmp_path):
    result = run("maskspec-classify", "--model_name_or_path", classifier_folder, "--inputs", tmp_path / "nope.wav",
                 "--output_file", tmp_path / "x.csv")  # fmt: skip
    assert_user_error(result, "maskspec-classify", "nope.wav does not exist")


def test_probe_succeeds_with_status_0_and_rejects_a_config_typo(data_dir, tmp_path):
    common = ["--data_dir", data_dir, "--eval_split_name", "test"]
    result = run("maskspec-probe", *TINY, *common, "--output_file", tmp_path / "probe.json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "probe.json").read_text())["test_examples"] == 4
    typo = run("maskspec-probe", "--model_name_or_path", "tiny", "--config_overrides", "num_hiden_layers=1", *common)
    assert_user_error(typo, "maskspec-probe", "'num_hiden_layers' is not a MaskSpecConfig field")


def test_probe_takes_a_recipe_file_first_and_options_after_it_override_it(data_dir, tmp_path):
    recipe = tmp_path / "probe.json"
    recipe.write_text(json.dumps({"model_name_or_path": "tiny", "config_overrides": "num_hidden_layers=1,max_frames=100",
                                  "data_dir": str(data_dir), "eval_split_name": "validation", "pooling": "freq-concat",
                                  "random_init": True}))  # fmt: skip
    output = tmp_path / "probe.json.out"
    result = run("maskspec-probe", recipe, "--eval_split_name", "test", "--output_file", output)
    assert result.returncode == 0, result.stderr[-2000:]
    probed = json.loads(output.read_text())
    assert probed["test_split"] == "test" and probed["test_examples"] == 4  # the option after the file wins
    assert probed["pooling"] == "freq-concat" and probed["embedding_size"] == 2 * 8 * 192  # the file's values hold
    assert probed["weights"] == "random init" and probed["model"] == "tiny"
    recipe.write_text(json.dumps({"model_name_or_path": "tiny", "data_dir": str(data_dir), "poolin": "mean"}))
    assert_user_error(run("maskspec-probe", recipe), "maskspec-probe", "unknown options poolin")


def test_finetune_succeeds_with_status_0(data_dir, tmp_path):
    out = tmp_path / "out"
    result = run("maskspec-finetune", *TINY, "--data_dir", data_dir, "--eval_split_name", "test", "--output_dir", out,
                 "--do_train", "--do_eval", "--max_steps", "1", "--per_device_train_batch_size", "2", *TRAINER)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "model.safetensors").exists() and "eval_accuracy" in json.loads(
        (out / "all_results.json").read_text()
    )


def test_finetune_takes_a_recipe_file_first_and_options_after_it_override_it(data_dir, tmp_path):
    recipe = tmp_path / "finetune.json"
    recipe.write_text(json.dumps({"model_name_or_path": "tiny", "config_overrides": "num_hidden_layers=1,max_frames=100",
                                  "data_dir": str(data_dir), "eval_split_name": "validation", "do_train": True,
                                  "do_eval": True, "max_steps": 5, "per_device_train_batch_size": 2, "mixup_alpha": 0.0,
                                  "layer_decay": 0.5, "report_to": "none", "save_strategy": "no"}))  # fmt: skip
    out = tmp_path / "out"
    result = run("maskspec-finetune", recipe, "--eval_split_name", "test", "--max_steps", "1", "--output_dir", out,
                 "--disable_tqdm", "true", "--dataloader_pin_memory", "false")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1  # the option after the file wins
    assert json.loads((out / "all_results.json").read_text())["eval_samples"] == 4  # the test split, not validation
    card = (out / "README.md").read_text()
    assert "| mixup_alpha | 0 |" in card and "| layer_decay | 0.5 |" in card  # the file's values hold
    recipe.write_text(json.dumps({"model_name_or_path": "tiny", "data_dir": str(data_dir), "mixup_alfa": 0.0}))
    assert_user_error(run("maskspec-finetune", recipe, "--output_dir", out), "maskspec-finetune",
                      "unknown options mixup_alfa")  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--config_overrides", "num_hiden_layers=1"], "'num_hiden_layers' is not a MaskSpecConfig field"),
        (["--max_train_samples", "0"], "training split 'train' has no rows after --max_train_samples 0"),
        (
            ["--push_to_hub", "--hub_model_id", "me/tones", "--hub_token", "hf_not_a_real_token"],
            "--push_to_hub --hub_model_id me/tones: HF_HUB_OFFLINE is set",
        ),
        (["--data_dir", "/nonexistent/folder"], "--data_dir '/nonexistent/folder' is not a folder"),
    ],
)
def test_finetune_user_errors_are_status_2_before_training(data_dir, tmp_path, extra, message):
    out = tmp_path / "out"
    result = run("maskspec-finetune", "--model_name_or_path", "tiny", "--data_dir", data_dir, "--eval_split_name",
                 "test", "--output_dir", out, "--do_train", "--max_steps", "1", *extra, *TRAINER)  # fmt: skip
    assert_user_error(result, "maskspec-finetune", message)
    assert not (out / "model.safetensors").exists()
