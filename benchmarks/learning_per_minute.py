# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Learning per CPU-minute: the shipped CPU recipe against the paper's decoder, on `ssl_gain.py`'s real-audio tasks.

    python benchmarks/learning_per_minute.py          # outputs/learning_per_minute/{results.md,results.json,*.png}
    python benchmarks/learning_per_minute.py --quick  # the same path with tiny budgets (checks the path only)

Two pre-training recipes, each with every seed of --seeds, all from `examples/recipes/tiny-cpu.json` (read as
`maskspec-pretrain` reads it):
- `recipe`: the file unchanged (cross-attention decoder 2 x 256, a quarter of the masked patches reconstructed,
  normalization statistics fitted on the corpus);
- `paper`: the same file with the paper's decoder (8 blocks of width 512, self-attention over all patches, every
  masked patch reconstructed) and PaSST's AudioSet normalization statistics.
Budgets are in CPU-minutes, the process CPU time of a one-thread run that also decodes its own data, so runs can
share a busy machine and still be compared: each job runs alone on one thread, several jobs side by side. The
learning-rate schedule is fitted to the budget (the package's `fit_schedule`, fed with CPU time instead of wall
time); the encoder is saved at each of --eval_cpu_minutes. Each saved encoder is probed (both readouts of
`ssl_gain.py`, on each of --tasks: ssl_gain.py's two by default, `sound_events` is sound_events.py's third); the last
of each run and the recipe's at the paper's budget are fine-tuned with 10 % of the labels, as are random-init encoders
(scratch).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


HERE = Path(__file__).resolve().parent
RECIPE_FILE = HERE.parent / "examples" / "recipes" / "tiny-cpu.json"
TASKS = ("keywords", "instruments")  # ssl_gain.py's tasks, the default of --tasks
# What each pre-training recipe adds to tiny-cpu.json. No config overrides = the preset's decoder, the paper's (512
# wide, 8 blocks, 16 heads, FFN 2048), run with the model's default attention kernel; `recipe-passt-stats` is the
# ablation of the fitted normalization statistics, `recipe-constant-lr` that of the cosine's annealing (the learning
# rate stays at its peak after the warm-up),
# `recipe-batch32` that of the batch (twice the steps of half the clips), `recipe-sdpa` that of the attention kernel
# (the model default instead of the recipe's eager one: the same maths, slower steps); `recipe-reconstruct-all` that of
# the partial reconstruction (every masked patch scored, not a quarter), `recipe-inverse-block`, `recipe-time-mask` and
# `recipe-frequency-mask` those of the masking. Inverse block masking uses 3 x 3 blocks: the 26 visible patches of a
# 2.08 s crop then form ~3 blocks, about as many per visible patch as EAT's 5 x 5 blocks of its 102 of 512.
# `recipe-decoder4` and `recipe-decoder8` test the decoder's depth (2 blocks in the recipe): MAE (He et al. 2022,
# table 1a) probes linearly 3.5 points better with 8 blocks than with 2 at equal epochs, as a deeper decoder takes
# over the reconstruction's low-level work from the encoder's last blocks; here each block costs steps.
# `recipe-no-cache` decodes and featurizes every crop instead of cutting it from whole-clip spectrograms held in
# memory (--feature_cache_gb). `recipe-mask85` masks 85 % of the patches instead of 75 % (16 visible patches of a
# 2.08 s crop's 104 instead of 26: a cheaper encoder pass, so more steps on a CPU whose step count limits the result;
# AudioMAE and EAT mask 80 %); it is the --mask_ratio flag, not an override, because the file's own --mask_ratio is
# applied after the overrides. The other ablations append to the recipe's overrides: a key given twice takes its last
# value.
RECIPE_OVERRIDES = json.loads(RECIPE_FILE.read_text())["config_overrides"]
RECIPES = {
    "recipe": [],
    "paper": ["--config_overrides", "", "--compute_normalization_stats", "0", "--attn_implementation", "sdpa"],
    "recipe-passt-stats": ["--compute_normalization_stats", "0"],
    "recipe-constant-lr": ["--lr_scheduler_type", "constant_with_warmup"],
    "recipe-batch32": ["--per_device_train_batch_size", "32"],
    "recipe-sdpa": ["--attn_implementation", "sdpa"],
    "recipe-reconstruct-all": ["--config_overrides", RECIPE_OVERRIDES + ",decoder_reconstruct_ratio=1.0"],
    "recipe-inverse-block": [
        "--config_overrides",
        RECIPE_OVERRIDES + ",mask_strategy=inverse_block,mask_block_size=3",
    ],
    "recipe-time-mask": ["--config_overrides", RECIPE_OVERRIDES + ",mask_strategy=time"],
    "recipe-frequency-mask": ["--config_overrides", RECIPE_OVERRIDES + ",mask_strategy=frequency"],
    "recipe-decoder4": ["--config_overrides", RECIPE_OVERRIDES + ",decoder_num_hidden_layers=4"],
    "recipe-decoder8": ["--config_overrides", RECIPE_OVERRIDES + ",decoder_num_hidden_layers=8"],
    "recipe-no-cache": ["--feature_cache_gb", "0"],
    "recipe-mask85": ["--mask_ratio", "0.85"],
}
TIMED_STEPS = range(3, 12)  # steps whose CPU time sizes the schedule (the first two pay for warm-up)
# ... and it is sized again at the package's REFIT_AT_STEP on the average since then: steps 3-11 ran 0.38-0.40 CPU-s
# on a quiet machine (whole quiet runs: 0.42-0.43) and 0.53 beside the test suite (that run: 0.47-0.49), so one
# early fit missed either way.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="outputs/learning_per_minute")
    parser.add_argument("--data_dir", default="outputs/real_audio", help="real_audio.py's cache.")
    parser.add_argument("--recipe_cpu_minutes", type=float, default=24.0)
    parser.add_argument("--paper_cpu_minutes", type=float, default=12.0)
    parser.add_argument("--eval_cpu_minutes", default="3,6,12,24")
    parser.add_argument("--eval_steps", default="100", help="Also save the encoders at these steps (equal steps).")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--jobs", type=int, default=4, help="One-thread jobs run side by side.")
    parser.add_argument("--finetune_fraction", type=float, default=0.1)
    parser.add_argument("--finetune_steps", type=int, default=150)
    parser.add_argument(
        "--finetune_args",
        default="",
        help="Extra fine-tuning options for every start, pre-trained and scratch, as ssl_gain.py's --finetune_args "
        "(a JSON object, e.g. '{\"layer_decay\": 0.75}').",
    )
    parser.add_argument("--recipes", default="recipe,paper", help="Which pre-training recipes to run.")
    parser.add_argument(
        "--tasks",
        default=",".join(TASKS),
        help=f"Which labeled tasks to probe and fine-tune on, of {', '.join(TASKS + ('sound_events',))} "
        "(sound_events.py's; it needs the Debian package 0ad-data, 1.4 GB).",
    )
    parser.add_argument("--stage", default="all", choices=["all", "pretrain"], help="'pretrain': stop after it.")
    parser.add_argument("--resume", action="store_true", help="Keep the results of jobs that already finished.")
    parser.add_argument("--skip_finetune", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)  # internal: one job as JSON
    args = parser.parse_args(argv)
    if args.quick:
        args.recipe_cpu_minutes, args.paper_cpu_minutes, args.eval_cpu_minutes = 0.6, 0.3, "0.3,0.6"
        args.seeds, args.finetune_steps, args.eval_steps = "0", 6, "8"
    return args


def log(message: str) -> None:
    print(f"[learning_per_minute {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# Jobs (each in its own one-thread process)
# ----------------------------------------------------------------------------------------------------------------------


def pretrain_job(job: dict) -> dict:
    """Pre-train one (recipe, seed) for `job['cpu_minutes']` CPU-minutes, saving the model at each eval mark."""
    from maskspec_hf.cli import parse_command_line
    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training import pretraining as pt
    from maskspec_hf.training.time_budget import (
        PROVISIONAL_TOTAL_STEPS,
        REFIT_AT_STEP,
        average_step_seconds,
        fit_schedule,
        fitted_total_steps,
    )

    out = Path(job["out_dir"])
    argv = [str(RECIPE_FILE), "--data_dir", job["corpus"], "--output_dir", str(out), "--overwrite_output_dir", "True"]
    argv += ["--seed", str(job["seed"]), "--dataloader_num_workers", "0", "--report_to", "none"]
    argv += ["--fit_schedule_to_time_limit", "False", "--max_steps", str(PROVISIONAL_TOTAL_STEPS)]
    argv += ["--checkpointing_steps", "0", "--image_steps", "0"]
    argv += RECIPES[job["recipe"]]
    model_args, data_args, training_args = parse_command_line(
        (ModelArguments, DataArguments, pt.PretrainingArguments), argv
    )
    pt.check_arguments(model_args, data_args, training_args)
    run = pt.set_up_run(model_args, data_args, training_args)
    budget = 60 * job["cpu_minutes"]
    marks = sorted({m * 60 for m in job["eval_cpu_minutes"] if m * 60 <= budget + 1e-6})
    step_marks = set(job["eval_steps"])  # equal-steps comparisons
    snapshots, step_cpu, history = [], [], []
    clock = {"started": time.process_time()}
    clock["last"] = clock["started"]

    def on_step(run, record):
        now = time.process_time()
        step, used = run.state.step, now - clock["started"]
        history.append({"step": step, "loss": record["loss"], "lr": record["lr"], "cpu_seconds": used})
        if step in TIMED_STEPS:
            step_cpu.append(now - clock["last"])
        if step == TIMED_STEPS.stop:
            fit_schedule(run, fitted_total_steps(step, used, step_cpu, budget))
            clock["fitted_at"] = (step, used)
            log(f"{job['name']}: {sum(step_cpu) / len(step_cpu):.2f} CPU-s/step -> {run.total_steps} steps")
        if step == REFIT_AT_STEP < run.total_steps:
            average = average_step_seconds(step, used, clock["fitted_at"])
            fit_schedule(run, fitted_total_steps(step, used, [average], budget))
            log(f"{job['name']}: {average:.2f} CPU-s/step since step {TIMED_STEPS.stop} -> {run.total_steps} steps")
        clock["last"] = now
        names = [f"step-{step}"] if step in step_marks else []
        while marks and (used >= marks[0] or step >= run.total_steps):
            names.append(f"cpu-{marks.pop(0) / 60:g}min")
        for name in names[:1]:  # one folder per step, whatever the marks
            snapshot = out / name
            run.unwrapped.save_pretrained(snapshot)
            run.feature_extractor.save_pretrained(snapshot)
            snapshots.append({"dir": str(snapshot), "step": step, "cpu_minutes": used / 60})
        if not marks and step < run.total_steps:  # the budget ran out before the schedule: nothing left to save
            log(f"{job['name']}: last snapshot at step {step} of {run.total_steps}: stopping")
            clock["planned_steps"], run.total_steps = run.total_steps, step

    try:
        pt.train(run, on_step=on_step)  # no time limit, no checkpoints: the budget is CPU time, fitted above
    finally:
        run.close()
    summary = pt.finish_run(run)
    accelerator, model = run.accelerator, run.model
    run.model = run.optimizer = run.scheduler = None
    pt.end_distributed_run(accelerator, weakref.ref(model))
    total_steps = clock.get("planned_steps", summary["total_steps"])  # the schedule's length, not where it stopped
    return {**job, "snapshots": snapshots, "history": history, "total_steps": total_steps,
            "normalization": summary["normalization"]}  # fmt: skip


def task_datasets(data_dir: Path, tasks: list[str]) -> dict:
    """{task: DatasetDict} of the labeled tasks, from their caches in `data_dir`."""
    import real_audio
    import sound_events

    data = real_audio.build_all(data_dir, install=False) if set(tasks) & set(TASKS) else {}
    if "sound_events" in tasks:
        data["sound_events"] = sound_events.build_sound_event_task(data_dir, install=False)
    return data


def probe_job(job: dict) -> dict:
    """Both probe readouts of one saved encoder (or a random-init one) on each of its tasks."""
    import numpy as np
    import ssl_gain
    import torch

    from maskspec_hf import MaskSpecFeatureExtractor, MaskSpecModel

    source = job["model_dir"]
    feature_extractor = MaskSpecFeatureExtractor.from_pretrained(source)
    encoder = MaskSpecModel.from_pretrained(source)
    if job.get("random_init"):
        torch.manual_seed(job["seed"])
        encoder = MaskSpecModel(encoder.config)
    scores = {}
    for task in job["tasks"]:
        clips = ssl_gain.load_clips(Path(job["data_dir"]), task, feature_extractor)
        (train_x, train_y), (test_x, test_y) = clips["train"], clips["test"]
        train_e, test_e = ssl_gain.encoder_embeddings(encoder, train_x), ssl_gain.encoder_embeddings(encoder, test_x)
        for readout in train_e:
            scores[f"{task}/{readout}"] = ssl_gain.probe_accuracy(
                train_e[readout], train_y, test_e[readout], test_y, job["seed"]
            )
        scores[f"{task}/chance"] = 1.0 / len(np.unique(train_y))
    return {**job, "scores": scores}


def finetune_job_arguments(job: dict) -> argparse.Namespace:
    """ssl_gain.py's arguments for a fine-tuning job: its steps, seed and extra fine-tuning options."""
    import ssl_gain

    return ssl_gain.parse_args(
        ["--finetune_steps", str(job["finetune_steps"]), "--seed", str(job["seed"])]
        + ["--finetune_args", job.get("finetune_args", "")]
    )


def finetune_job(job: dict) -> dict:
    """10 %-label fine-tuning (ssl_gain.py's short recipe) of one saved model, or from scratch, on each of its tasks."""
    import real_audio
    import soundfile
    import ssl_gain

    args = finetune_job_arguments(job)
    data_dir = Path(job["data_dir"])
    with open(data_dir / ".load.lock", "w") as lock:  # jobs side by side: one loads (and may cache) at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = task_datasets(data_dir, job["tasks"])
    scores = {}
    for task in job["tasks"]:
        first = real_audio.load_manifest(data_dir, task)["clips"][0]["file"]
        seconds = soundfile.info(str(data_dir / task / first)).duration  # a task's clips all have one length
        out = Path(job["out_dir"]) / task / "run"  # ssl_gain keeps a run's label subset beside it: one per task
        init = "scratch" if job.get("scratch") else "pre-trained"
        result = ssl_gain.run_finetuning(args, data[task], job["fraction"], init, Path(job["model_dir"]), out, seconds)
        scores[task] = result["accuracy"]
    return {**job, "scores": scores}


JOBS = {"pretrain": pretrain_job, "probe": probe_job, "finetune": finetune_job}


def run_jobs(jobs: list[dict], parallel: int, out_dir: Path, resume: bool = False) -> list[dict]:
    """Each job in a one-thread subprocess of this script, `parallel` at a time; their results in order (with
    `resume`, a job whose result file exists is not run again)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

    def one(job: dict) -> dict:
        result_file = out_dir / "jobs" / f"{job['kind']}-{job['name']}.json"
        result_file.parent.mkdir(parents=True, exist_ok=True)
        if resume and result_file.exists():
            kept = json.loads(result_file.read_text())
            # A probe or fine-tuning result counts only for the tasks it was run on (before --tasks: ssl_gain.py's).
            if "tasks" not in job or kept.get("tasks", list(TASKS)) == job["tasks"]:
                return kept
        log_file = result_file.with_suffix(".log")
        with open(log_file, "w") as handle:
            code = subprocess.call(
                [sys.executable, __file__, "--job", json.dumps({**job, "result_file": str(result_file)})],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if code != 0:
            raise RuntimeError(f"job {job['kind']} {job['name']} failed ({code}): see {log_file}")
        log(f"done: {job['kind']} {job['name']}")
        return json.loads(result_file.read_text())

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, jobs))


def job_main(spec: str) -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    sys.path.insert(0, str(HERE))
    job = json.loads(spec)
    result = JOBS[job["kind"]](job)
    Path(job["result_file"]).write_text(json.dumps(result, indent=1))


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.job:
        return job_main(args.job)
    sys.path.insert(0, str(HERE))
    import real_audio
    from learning_per_minute_report import write_report

    started = time.time()
    out_dir, data_dir = Path(args.out_dir), Path(args.data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log("1/4 real-audio data (cached in --data_dir)")
    real_audio.build_all(data_dir)
    tasks = args.tasks.split(",")
    if "sound_events" in tasks:
        import sound_events

        sound_events.build_sound_event_task(data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    marks = [float(m) for m in args.eval_cpu_minutes.split(",")]
    budgets = {r: args.paper_cpu_minutes if r == "paper" else args.recipe_cpu_minutes for r in args.recipes.split(",")}
    pretrain_jobs = [
        {"kind": "pretrain", "name": f"{recipe}-seed{seed}", "recipe": recipe, "seed": seed,
         "cpu_minutes": budget, "eval_cpu_minutes": marks + [budget], "corpus": str(data_dir / "pretrain"),
         "eval_steps": [int(s) for s in args.eval_steps.split(",") if s],
         "out_dir": str(out_dir / "pretrain" / f"{recipe}-seed{seed}")}
        for recipe, budget in budgets.items() for seed in seeds
    ]  # fmt: skip
    log(f"2/4 pre-training: {len(pretrain_jobs)} one-thread jobs, {args.jobs} at a time")
    runs = run_jobs(pretrain_jobs, args.jobs, out_dir, args.resume)
    if args.stage == "pretrain":
        return {"runs": runs}

    log("3/4 linear probes of every saved encoder, and of random-init ones")
    probe_jobs = []
    for run in runs:
        for snapshot in run["snapshots"]:
            name = f"{run['name']}-{snapshot['cpu_minutes']:.1f}min"
            probe_jobs.append({"kind": "probe", "name": name, "run": run["name"], "seed": run["seed"],
                               "model_dir": snapshot["dir"], "data_dir": str(data_dir), "tasks": tasks})  # fmt: skip
    for run in runs:
        if run["recipe"] == "recipe":
            probe_jobs.append({"kind": "probe", "name": f"random-seed{run['seed']}", "run": "random", "random_init": True,
                               "seed": run["seed"], "model_dir": run["snapshots"][-1]["dir"], "data_dir": str(data_dir),
                               "tasks": tasks})  # fmt: skip
    probes = run_jobs(probe_jobs, args.jobs, out_dir, args.resume)

    log(f"4/4 fine-tuning with {args.finetune_fraction:.0%} of the labels")
    finetune_jobs = []
    runs_to_finetune = [] if args.skip_finetune else runs
    for run in runs_to_finetune:
        chosen = [run["snapshots"][-1]]
        if run["recipe"] == "recipe":  # also at the paper's budget: equal CPU-minutes
            chosen += [s for s in run["snapshots"][:-1] if abs(s["cpu_minutes"] - args.paper_cpu_minutes) < 0.5]
        for snapshot in chosen:
            finetune_jobs.append({"kind": "finetune", "name": f"{run['name']}-{snapshot['cpu_minutes']:.1f}min",
                                  "run": run["name"], "seed": run["seed"], "model_dir": snapshot["dir"],
                                  "cpu_minutes": snapshot["cpu_minutes"], "fraction": args.finetune_fraction,
                                  "finetune_steps": args.finetune_steps, "finetune_args": args.finetune_args,
                                  "data_dir": str(data_dir), "tasks": tasks,
                                  "out_dir": str(out_dir / "finetune" / run["name"] / f"{snapshot['cpu_minutes']:.1f}")})  # fmt: skip
    for seed in [] if args.skip_finetune else seeds:
        recipe_run = next(r for r in runs if r["recipe"] == "recipe" and r["seed"] == seed)
        finetune_jobs.append({"kind": "finetune", "name": f"scratch-seed{seed}", "run": "scratch", "scratch": True,
                              "seed": seed, "model_dir": recipe_run["snapshots"][-1]["dir"], "cpu_minutes": 0.0,
                              "fraction": args.finetune_fraction, "finetune_steps": args.finetune_steps,
                              "finetune_args": args.finetune_args,
                              "data_dir": str(data_dir), "tasks": tasks,
                              "out_dir": str(out_dir / "finetune" / f"scratch-seed{seed}")})  # fmt: skip
    finetunes = run_jobs(finetune_jobs, args.jobs, out_dir, args.resume)

    results = {"runs": runs, "probes": probes, "finetunes": finetunes, "args": vars(args),
               "wall_minutes": (time.time() - started) / 60}  # fmt: skip
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    report = write_report(results, out_dir)
    print("\n" + report)
    log(f"done in {results['wall_minutes']:.1f} min: {out_dir}/results.md, learning_per_minute.png")
    return results


if __name__ == "__main__":
    main()
