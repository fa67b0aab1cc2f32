"""examples/demo.py, `make demo`'s script: its verdict logic, and a whole (tiny) run as a user starts it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "examples"))
import demo  # noqa: E402


def _scores(pretrained: float, random_init: float) -> dict:
    return {
        name: {readout: {"accuracy": accuracy, "mAP": accuracy} for readout in demo.READOUTS}
        for name, accuracy in (("pre", pretrained), ("rand", random_init))
    }


@pytest.mark.parametrize(
    "pretrained, random_init, outcome",
    [(0.60, 0.40, "pre-trained wins"), (0.40, 0.60, "random init wins"), (0.52, 0.50, "tie within noise")],
)
def test_verdict_counts_a_difference_only_beyond_two_standard_errors(pretrained, random_init, outcome):
    text = demo.verdict(_scores(pretrained, random_init), "pre", "rand", num_test=400)
    assert text.count(outcome) == len(demo.READOUTS), text
    # Two standard errors of the difference of two accuracies on 400 clips.
    margin = 2 * ((pretrained * (1 - pretrained) + random_init * (1 - random_init)) / 400) ** 0.5
    assert f"noise +-{margin:.3f}" in text and f"{pretrained - random_init:+.3f}" in text


def test_demo_runs_end_to_end_in_a_subprocess(tmp_path):
    output_dir = tmp_path / "demo"
    command = [
        sys.executable,
        str(REPO_ROOT / "examples" / "demo.py"),
        *("--output_dir", str(output_dir), "--num_pretrain_clips", "48", "--pretrain_steps", "4"),
        *("--batch_size", "8", "--num_probe_train", "32", "--num_probe_test", "16", "--clip_seconds", "1.0"),
        *("--dataloader_num_workers", "0"),
    ]
    env = {**os.environ, "MASKSPEC_HF_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((output_dir / "results.json").read_text())
    rows = list(results["scores"])
    assert rows == ["MaskSpec-Tiny pre-trained (4 steps)", "MaskSpec-Tiny random init", rows[2]]
    assert rows[2].startswith("no encoder: log-mel mean+std")
    for scores in results["scores"].values():
        assert set(scores) == set(demo.READOUTS)
        assert all(0 <= scores[r]["accuracy"] <= 1 and 0 <= scores[r]["mAP"] <= 1 for r in scores)
    assert results["pretraining"]["step"] == 4 and results["mixed_precision"] in ("bf16", "no")
    # What it printed is what it measured: the table and the verdict on standard output match results.*.
    table = (output_dir / "results.md").read_text()
    assert "8 synthetic two-vowel words" in table and table.strip() in result.stdout
    assert results["verdict"] in result.stdout and results["verdict"].count("noise +-") == 2

    final = output_dir / "pretraining" / "final"
    config = json.loads((final / "config.json").read_text())
    assert "AutoModel" in config["auto_map"]
    for name in ("model.safetensors", "preprocessor_config.json", "README.md"):
        assert (final / name).is_file(), name
    assert (output_dir / "pretraining" / "reconstruction.png").stat().st_size > 0
