"""The recipe files under examples/recipes: each parses with its command's options, and the CPU recipe runs as the
README says (`maskspec-pretrain examples/recipes/tiny-cpu.json --data_dir X --output_dir Y --max_train_minutes 25`),
its schedule fitted to the time limit."""

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from audioset_fixture import write_audiofolder

from maskspec_hf.cli import parse_command_line
from maskspec_hf.data.arguments import DataArguments
from maskspec_hf.loading import ModelArguments, apply_config_overrides, load_config
from maskspec_hf.training.hardware import resolve_mixed_precision
from maskspec_hf.training.pretraining import PretrainingArguments
from maskspec_hf.training.pretraining_arguments import check_arguments
from maskspec_hf.training.time_budget import (
    PROVISIONAL_TOTAL_STEPS,
    average_step_seconds,
    fitted_total_steps,
    initial_total_steps,
)


RECIPES = sorted((Path(__file__).resolve().parents[1] / "examples" / "recipes").glob("*.json"))
CPU_RECIPE = next(path for path in RECIPES if "cpu" in path.name)
PRETRAINING = (ModelArguments, DataArguments, PretrainingArguments)


def test_there_is_a_cpu_and_a_gpu_recipe():
    names = [path.name for path in RECIPES]
    assert any("cpu" in name for name in names) and any("gpu" in name for name in names), names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_every_recipe_parses_and_passes_the_commands_checks(recipe, tmp_path):
    argv = [str(recipe), "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"),
            "--max_train_minutes", "25", "--max_steps", "100"]  # fmt: skip
    model_args, data_args, args = parse_command_line(PRETRAINING, argv)
    check_arguments(model_args, data_args, args)
    config = apply_config_overrides(load_config(model_args.model_name_or_path), model_args.config_overrides)
    raw = {key: value for key, value in json.loads(recipe.read_text()).items() if not key.startswith("_")}
    for key, value in raw.items():  # every value arrived as written
        parsed = next(getattr(group, key) for group in (model_args, data_args, args) if hasattr(group, key))
        assert parsed == value, key
    assert config.decoder_type == "cross_attention"
    assert config.decoder_reconstruct_ratio == 0.25


def test_an_unknown_option_in_a_recipe_is_an_error_naming_it(tmp_path):
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps({"_note": "ignored", "per_device_train_batch_sise": 4}))
    with pytest.raises(ValueError, match="per_device_train_batch_sise"):
        parse_command_line(PRETRAINING, [str(recipe), "--output_dir", str(tmp_path)])


def test_fitted_total_steps_fills_the_rest_of_the_budget():
    # 12 steps in 30 s, then 1 s per step: 570 s left, 3 % kept for checkpoints and figures.
    assert fitted_total_steps(12, 30.0, [1.0, 1.2, 0.9], 600.0) == 12 + math.floor(570 * 0.97 / 1.0)
    assert fitted_total_steps(12, 30.0, [1.0], 600.0, max_steps=100) == 100
    assert fitted_total_steps(12, 700.0, [1.0], 600.0) == 13  # over budget already: one more step
    with pytest.raises(ValueError, match="timed step"):
        fitted_total_steps(12, 1.0, [], 600.0)


def test_the_refit_uses_the_average_step_since_the_first_fit():
    # Fitted at step 11 after 25 s; by step 199, 213 s: 1 s per step since, 387 s left, 3 % kept.
    average = average_step_seconds(199, 213.0, (11, 25.0))
    assert average == 1.0
    assert fitted_total_steps(199, 213.0, [average], 600.0) == 199 + math.floor(387 * 0.97 / 1.0)
    assert fitted_total_steps(199, 213.0, [average], 600.0, max_steps=300) == 300
    over = average_step_seconds(199, 900.0, (11, 25.0))
    assert fitted_total_steps(199, 900.0, [over], 600.0) == 200  # over budget already: one more step


def test_a_fitted_count_recorded_in_a_checkpoint_is_kept_on_resume(tmp_path):
    args = PretrainingArguments(output_dir=str(tmp_path), max_train_minutes=5, fit_schedule_to_time_limit=True)
    assert initial_total_steps(args, 10, None) == (PROVISIONAL_TOTAL_STEPS, False)
    checkpoint = tmp_path / "step-20"
    checkpoint.mkdir()
    (checkpoint / "training_state.json").write_text(json.dumps({"total_steps": 345, "schedule_fitted": True}))
    assert initial_total_steps(args, 10, checkpoint) == (345, True)
    (checkpoint / "training_state.json").write_text(json.dumps({"total_steps": 1_000_000, "schedule_fitted": False}))
    assert initial_total_steps(args, 10, checkpoint) == (PROVISIONAL_TOTAL_STEPS, False)


def test_fitting_needs_a_time_limit(tmp_path):
    args = PretrainingArguments(output_dir=str(tmp_path), fit_schedule_to_time_limit=True)
    with pytest.raises(ValueError, match="--max_train_minutes"):
        check_arguments(ModelArguments(), DataArguments(data_dir=str(tmp_path)), args)


def test_the_cpu_recipe_runs_with_the_installed_script_and_anneals_by_its_fitted_end(tmp_path):
    script = shutil.which("maskspec-pretrain")
    if script is None:
        pytest.skip("the maskspec-pretrain console script is not installed (pip install -e .)")
    data = write_audiofolder(tmp_path / "audio", num_good=8)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # The recipe as shipped, with a batch the 8-clip folder fills and a step cap: the 30-minute budget would fit far
    # more than 30 steps, so the fitted schedule is capped at 30 whatever the machine's speed.
    command = [script, str(CPU_RECIPE), "--data_dir", str(data), "--output_dir", str(out),
               "--max_train_minutes", "30", "--max_steps", "30", "--per_device_train_batch_size", "4",
               "--report_to", "none", "--checkpointing_steps", "0", "--image_steps", "0"]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)  # timeout: hangs only
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--fit_schedule_to_time_limit: 9 timed steps" in result.stderr
    assert "Normalization: mean=" in result.stderr and "(fitted on 8 training clips)" in result.stderr
    # The recipe's spectrogram cache holds the 8 clips, filled before the first (timed) step.
    assert "each clip is featurized whole once" in result.stderr
    assert "Spectrogram cache: 8 clips' spectrograms held" in result.stderr
    summary = json.loads((out / "train_results.json").read_text())
    assert summary["step"] == summary["total_steps"] == 30
    assert summary["mixed_precision"] == resolve_mixed_precision("auto", has_accelerator=False)
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["decoder_type"] == "cross_attention" and config["num_hidden_layers"] == 12
    # The recipe trains with the eager attention kernel; the folder it ships does not impose it on its users.
    assert "attention kernel eager" in result.stderr
    assert not any("attn_implementation" in key for key in config)
    # After the fit at step 12 the learning rate follows a cosine over 30 steps with 5 % warmup (1 step).
    records = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    peak, warmup = 0.0015, int(0.05 * 30)
    for record in records[12:]:
        progress = (record["step"] - 1 - warmup) / (30 - warmup)
        assert record["lr"] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * progress)), rel=1e-6)
    assert records[-1]["lr"] < 0.01 * peak
