"""benchmarks/ssl_gain.py: the pieces of the "does pre-training help" experiment that can run in CI.

The experiment itself needs ~400 MB of Debian sound packages and ~45 CPU minutes; here its helpers run on small real
inputs: the command lines it builds are parsed by the package's own parsers, the label subsets are real
`datasets.Dataset` selections, the readouts come from a real encoder, and the report logic is checked both ways.
"""

import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from maskspec_hf import MaskSpecConfig, MaskSpecModel


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ssl_gain  # noqa: E402


def test_pretraining_arguments_are_accepted_by_the_pretraining_command(tmp_path):
    from maskspec_hf.training.pretraining_arguments import check_arguments

    args = ssl_gain.parse_args([])
    model_args, data_args, parsed = ssl_gain.pretraining_arguments(
        args, tmp_path / "corpus", tmp_path / "out", 1000, 24.0
    )
    check_arguments(model_args, data_args, parsed)  # what pretrain checks before anything heavy
    assert parsed.max_steps == 1000 and parsed.max_train_minutes == 24.0
    assert model_args.model_name_or_path == "tiny" and not parsed.scale_lr
    assert parsed.checkpointing_steps == 250 and data_args.max_length_seconds == pytest.approx(2.08)
    assert data_args.data_dir == str(tmp_path / "corpus") and parsed.output_dir == str(tmp_path / "out")
    assert "norm_pix_loss=False" in model_args.config_overrides
    calibration = ssl_gain.pretraining_arguments(args, tmp_path, tmp_path, 12, 10.0, calibration=True)[2]
    assert calibration.checkpointing_steps == 0 and calibration.image_steps == 0


@pytest.mark.parametrize("init", ["pre-trained", "scratch"])
def test_finetuning_arguments_are_accepted_by_the_finetuning_command(tmp_path, init):
    args = ssl_gain.parse_args(["--finetune_steps", "150", '--finetune_args={"seed": 3}'])
    model_args, data_args, recipe, training_args = ssl_gain.finetuning_arguments(
        args, init, tmp_path / "pretrained", tmp_path / "data", tmp_path / "run", 1.0
    )
    assert model_args.model_name_or_path == (str(tmp_path / "pretrained") if init == "pre-trained" else "tiny")
    assert data_args.eval_split_name == "test" and data_args.max_length_seconds == 1.0
    assert training_args.max_steps == 150 and training_args.seed == 3  # extra arguments come last and win
    # Only the initialization differs between the two runs: the same recipe, augmentation and layer decay off.
    assert recipe.mixup_alpha == 0 and recipe.patchout_ratio == 0 and recipe.layer_decay == 1.0


def test_learning_per_minute_passes_its_finetune_args_to_every_finetuning_job(tmp_path):
    import learning_per_minute

    job = {"finetune_steps": 40, "seed": 1, "finetune_args": '{"layer_decay": 0.75}'}
    args = learning_per_minute.finetune_job_arguments(job)
    _, _, recipe, training_args = ssl_gain.finetuning_arguments(
        args, "scratch", tmp_path, tmp_path / "data", tmp_path / "run", 1.0
    )
    assert recipe.layer_decay == 0.75 and training_args.max_steps == 40 and training_args.seed == 1
    # Jobs recorded before the option have no such field: the script's recipe, layer decay off.
    del job["finetune_args"]
    args = learning_per_minute.finetune_job_arguments(job)
    assert ssl_gain.finetuning_arguments(args, "scratch", tmp_path, tmp_path, tmp_path, 1.0)[2].layer_decay == 1.0
    assert learning_per_minute.parse_args(["--finetune_args", "{}"]).finetune_args == "{}"


def test_label_subset_is_stratified_and_reproducible():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    dataset = datasets.Dataset.from_dict({"label": labels, "row": list(range(100))})
    subset = ssl_gain.label_subset(dataset, 0.1, seed=0)
    assert np.bincount(subset["label"]).tolist() == [5, 3, 2]
    assert subset["row"] == ssl_gain.label_subset(dataset, 0.1, seed=0)["row"]
    assert subset["row"] != ssl_gain.label_subset(dataset, 0.1, seed=1)["row"]
    assert set(subset["row"]) <= set(range(100))
    assert ssl_gain.label_subset(dataset, 1.0, seed=0) is dataset


def test_readouts_of_a_real_encoder():
    config = MaskSpecConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    encoder = MaskSpecModel(config).eval()
    spectrograms = np.random.default_rng(0).standard_normal((3, 64, 128)).astype(np.float32)
    out = ssl_gain.encoder_embeddings(encoder, spectrograms, batch_size=2)
    assert out["mean"].shape == (3, 32)
    assert out["freq-concat"].shape == (3, 2 * 8 * 32)
    with torch.no_grad():
        hidden = encoder(input_values=torch.from_numpy(spectrograms)).last_hidden_state.numpy()
    np.testing.assert_allclose(out["mean"], hidden.mean(axis=1), atol=1e-5)
    # Patches are time-major: one 160-ms step = 8 consecutive patches, concatenated in frequency order.
    steps = hidden.reshape(3, 4, 8 * 32)
    np.testing.assert_allclose(out["freq-concat"][:, :256], steps.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(out["freq-concat"][:, 256:], steps.max(axis=1), atol=1e-5)
    np.testing.assert_allclose(out["freq-concat"][:, 8:16], hidden[:, 0::8, 8:16].mean(axis=1), atol=1e-5)
    assert not np.allclose(out["freq-concat"][:, :32], hidden[:, 1::8].mean(axis=1), atol=1e-3)


def test_log_mel_baseline_is_mean_and_std_over_time():
    x = np.random.default_rng(1).standard_normal((4, 100, 128)).astype(np.float32)
    features = ssl_gain.log_mel_embeddings(x)
    assert features.shape == (4, 256)
    np.testing.assert_allclose(features[:, :128], x.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(features[:, 128:], x.std(axis=1), atol=1e-6)


def fake_results(pretrained_probe: float, pretrained_finetune: float) -> dict:
    probe = {"chance": 0.1, "log-mel": 0.5, "random/mean": 0.4, "random/freq-concat": 0.55,
             "pre-trained/mean": pretrained_probe, "pre-trained/freq-concat": pretrained_probe}  # fmt: skip
    finetune = {"scratch@0.1": {"accuracy": 0.3}, "pre-trained@0.1": {"accuracy": pretrained_finetune},
                "scratch@1": {"accuracy": 0.6}, "pre-trained@1": {"accuracy": 0.65}}  # fmt: skip
    meta = {"pretrain_steps": 10, "pretrain_minutes": 1.0, "pretrain_clips_seen": 640, "pretrain_clip_seconds": 2.08,
            "num_pretrain_clips": 100, "pretrain_first_loss": 1.0, "pretrain_final_loss": 0.5,
            "config_overrides": "norm_pix_loss=False", "wall_minutes": 3.0, "finetune_steps": 150,
            "finetune_batch_size": 32}  # fmt: skip
    return {"probe": {"keywords": probe}, "finetune": {"keywords": finetune}, "meta": meta}


def test_targets_are_judged_against_both_baselines():
    good = fake_results(pretrained_probe=0.71, pretrained_finetune=0.41)
    lines = ssl_gain.targets(good)
    assert [line.endswith("met") for line in lines] == [True, True, True]
    # 0.64 is 24 points above random/mean but only 14 above log-mel, and 9 above random/freq-concat.
    bad = fake_results(pretrained_probe=0.64, pretrained_finetune=0.39)
    assert all(line.endswith("MISSED") for line in ssl_gain.targets(bad))
    good["targets"] = ssl_gain.targets(good)
    table = ssl_gain.markdown(good)
    assert "| keywords | 0.100 | 0.500 | 0.400 | **0.710** | 0.550 | **0.710** |" in table
    assert "| keywords | 0.300 | **0.410** | 0.600 | **0.650** |" in table


# What each ablation of learning_per_minute.py changes in the shipped recipe's model config, and nothing else.
ABLATION_CONFIG_CHANGES = {
    "recipe-reconstruct-all": {"decoder_reconstruct_ratio": 1.0},
    "recipe-inverse-block": {"mask_strategy": "inverse_block", "mask_block_size": 3},
    "recipe-time-mask": {"mask_strategy": "time"},
    "recipe-frequency-mask": {"mask_strategy": "frequency"},
    "recipe-decoder4": {"decoder_num_hidden_layers": 4},
    "recipe-decoder8": {"decoder_num_hidden_layers": 8},
    "recipe-mask85": {"mask_ratio": 0.85},
}


@pytest.mark.parametrize("recipe", sorted(ABLATION_CONFIG_CHANGES))
def test_learning_per_minute_ablation_changes_only_its_own_config_fields(recipe):
    import learning_per_minute

    from maskspec_hf.cli import parse_command_line
    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training.pretraining_arguments import PretrainingArguments
    from maskspec_hf.training.pretraining_setup import build_config

    def config_of(name):
        # The config the pre-training builds: the recipe's overrides, then --mask_ratio.
        argv = [str(learning_per_minute.RECIPE_FILE), "--data_dir", "x", "--output_dir", "y"]
        model_args, _, training_args = parse_command_line(
            (ModelArguments, DataArguments, PretrainingArguments), argv + learning_per_minute.RECIPES[name]
        )
        return build_config(model_args, training_args.mask_ratio).to_dict()

    shipped, ablation = config_of("recipe"), config_of(recipe)
    changed = {key: value for key, value in ablation.items() if shipped.get(key) != value}
    assert changed == ABLATION_CONFIG_CHANGES[recipe]
    assert shipped["decoder_type"] == "cross_attention" and shipped["mask_strategy"] == "random"


def _lpm_results(ends: dict) -> dict:
    """learning_per_minute's results for runs whose last snapshot (`cpu-24min`) came at `ends[name]` CPU-minutes."""
    runs, finetunes = [], []
    for name, (recipe, seed, minutes, scores) in ends.items():
        snapshot = {"dir": f"out/pretrain/{name}/cpu-24min", "step": 100, "cpu_minutes": minutes}
        runs.append({"name": name, "recipe": recipe, "seed": seed, "snapshots": [snapshot]})
        finetunes.append({"run": name, "model_dir": snapshot["dir"], "cpu_minutes": minutes, "scores": scores})
    for seed, score in ((0, 0.25), (1, 0.35)):
        finetunes.append({"run": "scratch", "model_dir": f"out/pretrain/recipe-seed{seed}/cpu-24min",
                          "cpu_minutes": 0.0, "scores": {"keywords": score, "instruments": score}})  # fmt: skip
    random_scores = {f"{t}/{r}": 0.3 for t in ("keywords", "instruments") for r in ("mean", "freq-concat")}
    probes = [{"run": "random", "model_dir": "", "scores": random_scores}]
    for run in runs:
        probes.append({"run": run["name"], "model_dir": run["snapshots"][0]["dir"], "scores": random_scores})
    return {"runs": runs, "probes": probes, "finetunes": finetunes}


def test_learning_per_minute_report_averages_the_seeds_of_a_run_that_ended_early():
    # Seeds whose schedules ended 1.4 CPU-minutes apart (a machine that sped up after the schedule was sized) are
    # one row, and both count towards the fine-tuning target, as seeds that ended together do.
    import learning_per_minute_report as report

    results = _lpm_results({
        "recipe-seed0": ("recipe", 0, 20.1, {"keywords": 0.40, "instruments": 0.30}),
        "recipe-seed1": ("recipe", 1, 21.5, {"keywords": 0.50, "instruments": 0.20}),
        "recipe-time-mask-seed0": ("recipe-time-mask", 0, 24.0, {"keywords": 0.6, "instruments": 0.6}),
    })  # fmt: skip
    table = report.markdown(results)
    assert "| tiny-cpu.json | 20.8 | 45.0 (40.0 / 50.0) | 25.0 (30.0 / 20.0) |" in table
    assert "| scratch | 0.0 | 30.0 (25.0 / 35.0) | 30.0 (25.0 / 35.0) |" in table
    assert "| tiny-cpu.json, time mask | 24.0 | 60.0 | 60.0 |" in table
    lines = report.targets(results)
    assert "keywords, fine-tuning at 10 % labels: recipe +15.0 points vs scratch (target +5): met" in lines
    assert "instruments, fine-tuning at 10 % labels: recipe -5.0 points vs scratch (target +5): MISSED" in lines


def test_learning_per_minute_pretraining_stops_once_its_last_snapshot_is_saved(tmp_path, monkeypatch):
    # A machine slower than the early steps suggested reaches the CPU budget before the schedule's end: the snapshot
    # at the budget is the run's result, and the job stops there instead of training on to the schedule's end.
    import learning_per_minute
    from accelerate.state import AcceleratorState, GradientState
    from audioset_fixture import write_audiofolder

    tiny = tmp_path / "tiny.json"
    tiny.write_text('{"model_type": "maskspec", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,'
                    ' "intermediate_size": 64, "decoder_hidden_size": 32, "decoder_num_attention_heads": 2,'
                    ' "decoder_intermediate_size": 64}')  # fmt: skip
    small = ["--config_name", str(tiny), "--per_device_train_batch_size", "2", "--mixed_precision", "no"]
    monkeypatch.setitem(learning_per_minute.RECIPES, "small", small)
    job = {"name": "small-seed0", "recipe": "small", "seed": 0, "cpu_minutes": 0.0001, "eval_cpu_minutes": [0.0001],
           "eval_steps": [], "corpus": str(write_audiofolder(tmp_path / "corpus", 4)), "out_dir": str(tmp_path / "run")}  # fmt: skip
    try:
        result = learning_per_minute.pretrain_job(job)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    (snapshot,) = result["snapshots"]
    assert Path(snapshot["dir"], "config.json").is_file() and snapshot["cpu_minutes"] >= 0.0001
    assert result["history"][-1]["step"] == snapshot["step"] < result["total_steps"]


def test_learning_per_minute_report_covers_the_tasks_the_run_was_given():
    # A run on sound_events.py's task only (--tasks sound_events): its table and targets are about that task, and
    # results recorded before --tasks existed read as ssl_gain.py's two tasks.
    import learning_per_minute
    import learning_per_minute_report as report

    snapshot = {"dir": "out/pretrain/recipe-seed0/cpu-24min", "step": 900, "cpu_minutes": 23.5}
    results = {
        "args": {"tasks": "sound_events"},
        "runs": [{"name": "recipe-seed0", "recipe": "recipe", "seed": 0, "snapshots": [snapshot]}],
        "probes": [
            {"run": "random", "model_dir": "", "scores": {"sound_events/mean": 0.5, "sound_events/freq-concat": 0.6}},
            {
                "run": "recipe-seed0",
                "model_dir": snapshot["dir"],
                "scores": {"sound_events/mean": 0.62, "sound_events/freq-concat": 0.63},
            },
        ],  # fmt: skip
        "finetunes": [
            {
                "run": "recipe-seed0",
                "model_dir": snapshot["dir"],
                "cpu_minutes": 23.5,
                "scores": {"sound_events": 0.7},
            },
            {"run": "scratch", "model_dir": snapshot["dir"], "cpu_minutes": 0.0, "scores": {"sound_events": 0.6}},
        ],
    }
    table = report.markdown(results)
    assert "| pre-training | CPU-min | steps | sound_events mean | sound_events freq-concat |" in table
    assert "| tiny-cpu.json | 23.5 | 900 | 62.0 | 63.0 |" in table
    assert "keywords" not in table
    assert report.targets(results) == [
        "sound_events, probe (mean): recipe +12.0 points vs random init (target +10): met",
        "sound_events, probe (freq-concat): recipe +3.0 points vs random init (target +5): MISSED",
        "sound_events, fine-tuning at 10 % labels: recipe +10.0 points vs scratch (target +5): met",
    ]
    assert report._tasks({"args": {}}) == ("keywords", "instruments")
    assert learning_per_minute.parse_args([]).tasks == "keywords,instruments"


def test_learning_per_minute_resumes_a_job_only_for_the_tasks_it_was_run_on(tmp_path, monkeypatch):
    # --resume keeps a finished job's result, but a probe run on other tasks is run again (its scores would lack the
    # new task); results written before --tasks count as ssl_gain.py's two tasks, and pre-training jobs have none.
    import json

    import learning_per_minute

    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    (jobs_dir / "probe-old.json").write_text(json.dumps({"name": "old", "scores": {"keywords/mean": 0.5}}))
    (jobs_dir / "pretrain-run.json").write_text(json.dumps({"name": "run", "snapshots": []}))
    spawned = []

    def fake_call(command, **kwargs):  # stands in for the job's subprocess: writes its result file
        job = json.loads(command[command.index("--job") + 1])
        spawned.append(job["name"])
        Path(job["result_file"]).write_text(json.dumps({**job, "scores": {"sound_events/mean": 0.7}}))
        return 0

    monkeypatch.setattr(learning_per_minute.subprocess, "call", fake_call)
    old = {"kind": "probe", "name": "old"}
    kept = learning_per_minute.run_jobs(
        [{**old, "tasks": ["keywords", "instruments"]}, {"kind": "pretrain", "name": "run"}], 1, tmp_path, resume=True
    )
    assert spawned == [] and kept[0]["scores"] == {"keywords/mean": 0.5}
    rerun = learning_per_minute.run_jobs([{**old, "tasks": ["sound_events"]}], 1, tmp_path, resume=True)
    assert spawned == ["old"] and rerun[0]["scores"] == {"sound_events/mean": 0.7}
    again = learning_per_minute.run_jobs([{**old, "tasks": ["sound_events"]}], 1, tmp_path, resume=True)
    assert spawned == ["old"] and again == rerun
