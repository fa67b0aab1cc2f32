"""The installed `maskspec-pretrain` console script: exit status 0 on success, non-zero with the message on an error."""

import json
import os
import shutil
import subprocess

import pytest
from test_pretraining import QUIET_RUN


TINY_OVERRIDES = (
    "hidden_size=64,num_hidden_layers=2,num_attention_heads=2,intermediate_size=128,"
    "decoder_hidden_size=64,decoder_num_hidden_layers=1,decoder_num_attention_heads=2,"
    "decoder_intermediate_size=128"
)


@pytest.fixture(scope="module")
def script():
    path = shutil.which("maskspec-pretrain")
    if path is None:
        pytest.skip("the maskspec-pretrain console script is not installed (pip install -e .)")
    return path


def run(script, tmp_path, *args):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MASKSPEC_HF_CACHE": str(tmp_path / "maskspec_cache"),
    }
    command = [
        script,
        "--output_dir",
        str(tmp_path / "out"),
        "--model_name_or_path",
        "tiny",
        "--config_overrides",
        TINY_OVERRIDES,
        "--max_length_seconds",
        "1",
        "--synthetic_num_clips",
        "4",
        "--per_device_train_batch_size",
        "2",
        "--max_steps",
        "2",
        *QUIET_RUN,
        *args,
    ]
    # The timeout only detects a hang.
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_a_successful_run_exits_with_status_0(script, tmp_path):
    result = run(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "train_results.json").read_text())
    assert summary["step"] == 2
    assert json.loads((tmp_path / "out" / "final" / "config.json").read_text())["hidden_size"] == 64


def test_a_bad_argument_exits_non_zero_with_the_message(script, tmp_path):
    result = run(script, tmp_path, "--mask_ratio", "0.99")
    assert result.returncode == 2
    assert "maskspec-pretrain: error: --mask_ratio must lie in [0.05, 0.95], got 0.99" in result.stderr
    assert "Traceback" not in result.stderr
    result = run(script, tmp_path, "--config_overrides", "hidden_sise=64")
    assert result.returncode == 2 and "'hidden_sise' is not a MaskSpecConfig field" in result.stderr
    result = run(script, tmp_path, "--feature_cache_gb", "1", "--dataloader_num_workers", "2")
    assert result.returncode == 2 and "--feature_cache_gb keeps spectrograms in the training process" in result.stderr
