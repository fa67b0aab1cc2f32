"""Pre-training with Accelerate: outputs, exact resume after kill -9, streaming, 2 processes, Hub upload (offline)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from audioset_fixture import BAD_IDS, write_audiofolder, write_audioset_parquet, write_audioset_shards

from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor
from maskspec_hf.cli.pretrain import parse_arguments
from maskspec_hf.model_card import render_model_card
from maskspec_hf.training.checkpoints import list_checkpoints
from maskspec_hf.training.optim import adamw, param_groups
from maskspec_hf.training.pretraining import pretrain


def main(argv: list[str]) -> dict:
    """`pretrain` on the objects a `maskspec-pretrain` command line parses into (these tests are of the command)."""
    return pretrain(*parse_arguments(argv))


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "pretrain_maskspec.py"
# Options that keep a test run quiet and quick: no figures, no checkpoints, no workers, no trackers.
QUIET_RUN = [
    "--image_steps",
    "0",
    "--checkpointing_steps",
    "0",
    "--dataloader_num_workers",
    "0",
    "--report_to",
    "none",
]

TINY = {
    "model_type": "maskspec",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "decoder_hidden_size": 64,
    "decoder_num_hidden_layers": 1,
    "decoder_num_attention_heads": 2,
    "decoder_intermediate_size": 128,
}
STEPS = 8


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretraining")
    (root / "tiny.json").write_text(json.dumps(TINY))
    write_audioset_parquet(root / "audioset" / "balanced_train.parquet", num_good=8)
    return root


@pytest.fixture(autouse=True)
def one_thread_and_fresh_accelerate():
    # The test machine is small and shared: one intra-op thread is faster and steadier there.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def subprocess_env(root: Path) -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MASKSPEC_HF_CACHE": str(root / "maskspec_cache"),
        "PYTHONUNBUFFERED": "1",
    }


def common_args(root: Path) -> list[str]:
    """A tiny run on the AudioSet-schema parquet (8 good clips + 4 broken ones), 1 s clips."""
    return [
        "--config_name", str(root / "tiny.json"),
        "--data_files", str(root / "audioset" / "balanced_train.parquet"),
        "--cache_dir", str(root / "hf_cache"),
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "4",
        "--max_steps", str(STEPS),
        "--learning_rate", "0.05",
        "--warmup_steps", "2",
        "--checkpointing_steps", "2",
        "--checkpoints_total_limit", "2",
        "--image_steps", "4",
        "--dataloader_num_workers", "1",
        "--compute_normalization_stats", "4",
        "--seed", "7",
    ]  # fmt: skip


# Seconds; a multi-process test run takes well under a minute even on a loaded machine: this only detects a hang.
HANG_TIMEOUT = 300


def run_to_the_end(command: list[str], env: dict) -> tuple[int, str]:
    """`(exit status, output)` of `command`; a run still going after HANG_TIMEOUT is killed (with its processes)
    and fails the test."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=HANG_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        message = f"the run did not exit within {HANG_TIMEOUT} s (hung at exit?)\n{output[-4000:]}"
        raise AssertionError(message) from None
    return process.returncode, output


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "logs" / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight_run(workdir):
    """The reference: all steps in one go, with TensorBoard and a (mocked, offline) push to the Hub."""
    from huggingface_hub import HfApi

    calls = {"trained_before_create_repo": []}
    output_dir = workdir / "straight"

    def whoami(self, *args, **kwargs):
        return {"name": "someone", "auth": {"accessToken": {"role": "write"}}}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, **kwargs}
        calls["trained_before_create_repo"].append((output_dir / "logs" / "train_log.jsonl").exists())
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(
        self, *, repo_id, folder_path, commit_message, allow_patterns=None, ignore_patterns=None, **kwargs
    ):
        # What HfApi.upload_folder would send: the folder's files its patterns keep, read at the time of the call.
        from huggingface_hub.utils import filter_repo_objects

        folder = Path(folder_path)
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        sent = filter_repo_objects(names, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns)
        calls.setdefault("upload_folder", []).append({
            "repo_id": repo_id, "folder_path": folder, "commit_message": commit_message,
            "files": {name: (folder / name).read_bytes() for name in sent},
        })  # fmt: skip

    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to reach the Hub")

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HfApi, "whoami", whoami)
        patch.setattr(HfApi, "create_repo", create_repo)
        patch.setattr(HfApi, "upload_folder", upload_folder)
        patch.setattr(HfApi, "create_commit", no_network)
        patch.setattr(HfApi, "preupload_lfs_files", no_network)
        summary = main(common_args(workdir) + [
            "--output_dir", str(output_dir), "--report_to", "tensorboard",
            "--push_to_hub", "--hub_model_id", "someone/maskspec-test",
        ])  # fmt: skip
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return output_dir, summary, calls


def test_bad_arguments_are_clear_errors(workdir, tmp_path):
    base = common_args(workdir) + ["--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    with pytest.raises(ValueError, match=r"--mask_ratio must lie in \[0.05, 0.95\], got 0.99"):
        main(base + ["--mask_ratio", "0.99"])
    with pytest.raises(ValueError, match="A streaming dataset has no known length: give --max_steps"):
        main([a for a in base if a not in ("--max_steps", str(STEPS))] + ["--streaming"])
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        main(base + ["--push_to_hub"])
    with pytest.raises(ValueError, match="fewer than one 16-frame patch"):
        main(base + ["--max_length_seconds", "0.1"])
    with pytest.raises(ValueError, match="available columns: video_id, audio, labels, human_labels"):
        main(base + ["--audio_column_name", "sound"])
    # --config_overrides goes through maskspec_hf.loading, like every other command's.
    with pytest.raises(ValueError, match="'hidden_sise' is not a MaskSpecConfig field. Did you mean 'hidden_size'"):
        main(base + ["--config_overrides", "hidden_sise=32"])
    with pytest.raises(ValueError, match="cosine_with_min_lr.*min_lr"):
        main(base + ["--lr_scheduler_type", "cosine_with_min_lr"])
    with pytest.raises(SystemExit):  # argparse: an unknown tracker
        main(base + ["--report_to", "tensorboard", "nonsense"])
    with pytest.raises(ValueError, match=r"--lr_scheduler_kwargs must be a JSON object.*got '\[1\]'"):
        main(base + ["--lr_scheduler_kwargs", "[1]"])
    with pytest.raises(ValueError, match="--lr_scheduler_kwargs is not valid JSON"):
        main(base + ["--lr_scheduler_kwargs", "{min_lr_rate: 0.1}"])
    with pytest.raises(ValueError, match="none alone"):
        main(base + ["--report_to", "tensorboard", "none"])
    assert not (tmp_path / "out" / "logs" / "train_log.jsonl").exists()


def test_straight_run_writes_a_hub_ready_folder_logs_and_figures(straight_run):
    output_dir, summary, _ = straight_run
    log = read_log(output_dir)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    assert summary["final_loss"] == log[-1]["loss"] and summary["weights_identical_on_all_processes"]
    # 12 rows per epoch (4 of them broken), 3 batches of 4: every broken clip is skipped, counted and logged once per
    # epoch, and training went on.
    assert [r["epoch"] for r in log] == [0, 0, 0, 1, 1, 1, 2, 2]
    for step in (3, 6):
        assert log[step - 1]["skipped"] == {reason: step // 3 for reason in BAD_IDS.values()}
        assert log[step - 1]["clips_seen"] == step // 3 * 8
    assert log[-1]["clips_seen"] + sum(log[-1]["skipped"].values()) == STEPS * 4
    skipped = [
        json.loads(line) for line in (output_dir / "logs" / "skipped_clips.rank0.jsonl").read_text().splitlines()
    ]
    assert {(s["id"], s["reason"]) for s in skipped} == set(BAD_IDS.items())
    # The learning rate follows warmup then cosine, scaled from the base LR by batch / 256.
    peak = 0.05 * 4 / 256
    assert [r["lr"] for r in log[:3]] == pytest.approx([0.0, peak / 2, peak])  # transformers' warmup starts at 0
    assert 0 < log[-1]["lr"] < log[3]["lr"] < peak

    final = output_dir / "final"
    files = {p.name for p in final.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "reconstruction.png",
        "configuration_maskspec.py",
        "modeling_maskspec.py",
        "feature_extraction_maskspec.py",
    } <= files
    config = json.loads((final / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_maskspec.MaskSpecForPreTraining"
    assert config["hidden_size"] == 64 and config["mask_ratio"] == 0.75
    extractor = MaskSpecFeatureExtractor.from_pretrained(final)
    assert (extractor.mean, extractor.std) != (-4.5, 5.0)  # fitted by --compute_normalization_stats
    from transformers import AutoModelForPreTraining

    model = AutoModelForPreTraining.from_pretrained(final)
    assert type(model).__name__ == "MaskSpecForPreTraining"

    card = (final / "README.md").read_text()
    header = card.split("---")[1]
    for line in (
        "library_name: transformers",
        "license: apache-2.0",
        "pipeline_tag: feature-extraction",
        "- maskspec",
        "- audio",
        "- self-supervised",
    ):
        assert line in header
    assert "| learning_rate | 0.00078125 |" in card and "| effective_batch_size | 4 |" in card
    assert f"{log[-1]['loss']:.6g}" in card
    assert "not reproduced here" in card and "| Base | AudioSet-2M (AS-2M) | mAP | 0.471 |" in card

    for step in (4, 8):
        assert (output_dir / "images" / f"step-{step:07d}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output_dir / "runs" / "maskspec-pretraining"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/learning_rate", "train/clips_per_second", "train/skipped_clips"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in events.Scalars("train/loss")] == [8]  # --logging_steps 10: only the last step
    assert "reconstruction" in tags["images"]


def test_push_to_hub_sends_the_final_folder_in_one_commit(straight_run):
    output_dir, summary, calls = straight_run
    assert calls["create_repo"]["repo_id"] == "someone/maskspec-test" and calls["create_repo"]["exist_ok"]
    # The repo was checked (created) before any training, then again at the upload.
    assert calls["trained_before_create_repo"] == [False, True]
    (upload,) = calls["upload_folder"]  # one upload: one commit
    assert upload["repo_id"] == "someone/maskspec-test"
    assert upload["commit_message"] == f"MaskSpec pre-training: {STEPS} steps, final loss {summary['final_loss']:.4f}"
    final = output_dir / "final"
    assert upload["folder_path"] == final
    sent = upload["files"]
    assert sorted(sent) == sorted(p.name for p in final.iterdir())
    for name, content in sent.items():
        assert content == (final / name).read_bytes()


def test_kill_9_then_resume_latest_gives_the_same_losses(workdir, straight_run):
    output_dir = workdir / "killed"
    args = common_args(workdir) + ["--output_dir", str(output_dir), "--report_to", "none"]
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=subprocess_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while not (output_dir / "checkpoints" / "step-2").exists():
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (output_dir / "final").exists(), "the run finished before it was killed"
    killed_at = list_checkpoints(output_dir)[-1][0]
    assert 2 <= killed_at < STEPS

    # A torn checkpoint (a killed save) is ignored by "latest" and cleaned up.
    torn = output_dir / "checkpoints" / f".tmp-step-{STEPS + 10}"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"half a file")
    summary = main(args + ["--resume_from_checkpoint", "latest"])
    assert summary["resumed_from"].endswith(f"step-{killed_at}")
    assert not torn.exists()
    assert len(list_checkpoints(output_dir)) <= 2  # --checkpoints_total_limit

    reference = read_log(straight_run[0])
    resumed = read_log(output_dir)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for expected, got in zip(reference, resumed):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5), got["step"]
        assert got["lr"] == pytest.approx(expected["lr"]) and got["skipped"] == expected["skipped"]
        assert got["clips_seen"] == expected["clips_seen"]
    assert summary["final_loss"] == pytest.approx(straight_run[1]["final_loss"], abs=1e-5)


def test_streaming_run_resumes_exactly_across_workers_and_epochs(workdir):
    files = write_audioset_shards(workdir / "shards3", num_files=3, num_good_per_file=5)
    args = [
        "--config_name", str(workdir / "tiny.json"),
        "--data_files", *map(str, files),
        "--streaming", "--shuffle_buffer_size", "0",
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "2",
        "--max_steps", "9",
        "--checkpointing_steps", "3",
        "--image_steps", "0",
        "--dataloader_num_workers", "2",
        "--report_to", "none",
        "--log_clip_ids",
    ]  # fmt: skip
    first = workdir / "stream"
    main(args + ["--output_dir", str(first)])
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    reference = read_log(first)
    assert reference[-1]["epoch"] == 1  # 15 clips in 8 batches, then the next epoch
    ids = [
        i
        for line in (first / "logs" / "clip_ids.rank0.jsonl").read_text().splitlines()
        for i in json.loads(line)["ids"]
    ]
    assert len(set(ids[:15])) == 15

    second = workdir / "stream-resumed"
    shutil.copytree(first, second)
    shutil.rmtree(second / "final")
    summary = main(
        args + ["--output_dir", str(second), "--resume_from_checkpoint", str(second / "checkpoints" / "step-3")]
    )
    assert summary["resumed_from"].endswith("step-3")
    for expected, got in zip(reference, read_log(second)):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5), got["step"]


def test_torchrun_two_processes_see_different_clips_and_end_with_the_same_weights(workdir):
    files = write_audioset_shards(workdir / "shards4", num_files=4, num_good_per_file=4)
    output_dir = workdir / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
        "--output_dir", str(output_dir),
        "--config_name", str(workdir / "tiny.json"),
        "--data_files", *map(str, files),
        "--streaming", "--shuffle_buffer_size", "0",
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "2",
        "--max_steps", "2",
        "--checkpointing_steps", "1",
        "--image_steps", "0",
        "--dataloader_num_workers", "2",
        "--report_to", "none",
        "--log_clip_ids",
    ]  # fmt: skip
    returncode, output = run_to_the_end(command, subprocess_env(workdir))
    assert returncode == 0, output[-4000:]
    seen = {}
    for rank in (0, 1):
        lines = (output_dir / "logs" / f"clip_ids.rank{rank}.jsonl").read_text().splitlines()
        seen[rank] = [i for line in lines for i in json.loads(line)["ids"]]
        assert len(seen[rank]) == 8 and len(set(seen[rank])) == 8
    assert not set(seen[0]) & set(seen[1])  # each process reads its own shards
    fingerprints = json.loads((output_dir / "logs" / "weights_fingerprints.json").read_text())["fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    checkpoint = output_dir / "checkpoints" / "step-1"
    assert {"data_state.rank0.json", "data_state.rank1.json", "random_states_0.pkl", "random_states_1.pkl"} <= {
        p.name for p in checkpoint.iterdir()
    }
    log = read_log(output_dir)
    assert [r["clips"] for r in log] == [8, 8]  # 2 processes x 2 micro-batches x 2 clips per step


def test_builtin_synthetic_data_is_the_default_and_audiofolder_works(workdir, monkeypatch):
    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
    base = [
        "--config_name",
        str(workdir / "tiny.json"),
        "--max_length_seconds",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "2",
        *QUIET_RUN,
    ]
    synthetic = base + ["--output_dir", str(workdir / "synthetic"), "--synthetic_num_clips", "8"]
    # A time limit stops the run gracefully after the step where it is reached, with a checkpoint and final/...
    summary = main(synthetic + ["--max_train_minutes", "1e-6"])
    assert summary["stopped_by_time_limit"] and summary["step"] == 1 and summary["total_steps"] == 2
    assert [s for s, _ in list_checkpoints(workdir / "synthetic")] == [1]
    card = (workdir / "synthetic" / "final" / "README.md").read_text()
    assert "Built-in synthetic corpus of two-vowel words" in card and "datasets:" not in card.split("---")[1]
    assert "stopped by its time limit" in card
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    # ... and --resume_from_checkpoint latest finishes the same schedule.
    summary = main(synthetic + ["--resume_from_checkpoint", "latest"])
    assert summary["step"] == 2 and not summary["stopped_by_time_limit"]
    assert summary["clips_seen"] == 8 and sum(summary["skipped_clips"].values()) == 0
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    folder = write_audiofolder(workdir / "audiofolder", num_good=7)
    summary = main(base + ["--output_dir", str(workdir / "af"), "--data_dir", str(folder)])
    assert summary["clips_seen"] == 7 and summary["skipped_clips"]["decode_error"] == 1


def test_no_weight_decay_on_biases_norms_and_mask_token():
    from maskspec_hf import MaskSpecForPreTraining

    model = MaskSpecForPreTraining(MaskSpecConfig(**{k: v for k, v in TINY.items() if k != "model_type"}))
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "decoder.mask_token" in no_decay_names
    assert all(n.endswith("bias") or "norm" in n or n == "decoder.mask_token" for n in no_decay_names)
    assert all(p.ndim == 2 for p in decay["params"]) and decay["weight_decay"] == 0.05


def test_adamw_is_fused_on_cpu_and_updates_as_the_looped_one():
    from maskspec_hf import MaskSpecForPreTraining

    torch.manual_seed(0)
    config = MaskSpecConfig(**{k: v for k, v in TINY.items() if k != "model_type"})
    fused_model, looped_model = MaskSpecForPreTraining(config), MaskSpecForPreTraining(config)
    looped_model.load_state_dict(fused_model.state_dict())
    initial = fused_model.maskspec.patch_embeddings.projection.weight.detach().clone()
    options = dict(lr=1e-2, betas=(0.9, 0.95))
    fused = adamw(param_groups(fused_model, 0.05), "cpu", **options)
    looped = torch.optim.AdamW(param_groups(looped_model, 0.05), foreach=False, **options)
    assert (
        fused.defaults["fused"] is True
        and adamw([torch.nn.Parameter(torch.zeros(1))], "meta").defaults["fused"] is None
    )
    for _ in range(5):
        for a, b in zip(fused_model.parameters(), looped_model.parameters()):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        fused.step()
        looped.step()
    for (name, a), b in zip(fused_model.named_parameters(), looped_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(fused_model.maskspec.patch_embeddings.projection.weight, initial), "the steps moved nothing"


def test_model_card_for_a_fine_tuned_classifier():
    config = MaskSpecConfig.from_preset("tiny", num_labels=2, id2label={0: "dog", 1: "cat"})
    card = render_model_card(
        config,
        task="audio-classification",
        hyperparameters={"learning_rate": 5e-5},
        results={"accuracy": 0.75},
        datasets=["agkphysics/AudioSet (balanced)"],
        base_model="someone/maskspec-tiny",
        eval_dataset="agkphysics/AudioSet",
        eval_split="test",
    )
    header = card.split("---")[1]
    assert "pipeline_tag: audio-classification" in header and "base_model: someone/maskspec-tiny" in header
    assert "- agkphysics/AudioSet" in header and "value: 0.75" in header
    assert "single-label, 2 classes: dog, cat" in card
    assert "Results reported by the MaskSpec paper (not reproduced here)" in card
    with pytest.raises(ValueError, match="task must be one of"):
        render_model_card(config, task="asr")


def reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def synthetic_args(workdir: Path, output_dir: Path, *extra: str) -> list[str]:
    """A tiny run on 4 built-in synthetic clips: 1 step of 2 clips."""
    return [
        "--config_name",
        str(workdir / "tiny.json"),
        "--max_length_seconds",
        "1",
        "--synthetic_num_clips",
        "4",
        "--per_device_train_batch_size",
        "2",
        "--max_steps",
        "1",
        *QUIET_RUN,
        "--output_dir",
        str(output_dir),
        *extra,
    ]


def test_push_to_hub_without_a_token_or_offline_fails_before_training(workdir, tmp_path, monkeypatch):
    import huggingface_hub.constants

    # No token anywhere (environment or token file); conftest set HF_HUB_OFFLINE=1.
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
    output_dir = tmp_path / "out"
    push = ["--push_to_hub", "--hub_model_id", "someone/maskspec-test"]
    with pytest.raises(ValueError, match="--hub_model_id someone/maskspec-test: no Hub token; pass --hub_token"):
        main(synthetic_args(workdir, output_dir, *push))
    reset_accelerate()
    with pytest.raises(ValueError, match="--hub_model_id someone/maskspec-test: HF_HUB_OFFLINE is set"):
        main(synthetic_args(workdir, output_dir, *push, "--hub_token", "hf_not_a_real_token"))
    assert not (output_dir / "logs" / "train_log.jsonl").exists()  # failed before any training


def synthetic_run(workdir: Path, output_dir: Path, **training) -> dict:
    """`synthetic_args`'s run, from Python: `pretrain` called with the three argument objects."""
    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training.pretraining import PretrainingArguments

    options = dict(
        per_device_train_batch_size=2,
        max_steps=1,
        image_steps=0,
        checkpointing_steps=0,
        dataloader_num_workers=0,
        report_to=["none"],
        output_dir=str(output_dir),
    )
    return pretrain(
        ModelArguments(config_name=str(workdir / "tiny.json")),
        DataArguments(max_length_seconds=1.0, synthetic_num_clips=4),
        PretrainingArguments(**{**options, **training}),
    )


def test_mixed_precision_defaults_to_the_launchers(workdir, tmp_path, monkeypatch):
    # `accelerate launch --mixed_precision bf16` (or its config file) reaches the script as this variable.
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
    summary = synthetic_run(workdir, tmp_path / "launcher")
    assert summary["mixed_precision"] == "bf16"
    assert "| mixed_precision | bf16 |" in (tmp_path / "launcher" / "final" / "README.md").read_text()
    reset_accelerate()
    summary = synthetic_run(workdir, tmp_path / "flag", mixed_precision="no")  # the option still wins
    assert summary["mixed_precision"] == "no"


def test_a_recipe_file_holds_defaults_that_the_command_line_overrides(workdir, tmp_path, monkeypatch):
    from maskspec_hf.cli.pretrain import main as console_main

    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
    folder = write_audiofolder(tmp_path / "sounds", num_good=3)
    recipe = {"config_name": str(workdir / "tiny.json"), "max_length_seconds": 1, "per_device_train_batch_size": 2,
              "max_steps": 5, "learning_rate": 0.01, "scale_lr": False, "image_steps": 0, "checkpointing_steps": 0,
              "dataloader_num_workers": 0, "report_to": ["none"], "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
              "lr_scheduler_type": "cosine_with_min_lr"}  # fmt: skip
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    output_dir = tmp_path / "out"
    status = console_main(
        [str(tmp_path / "recipe.json"), "--data_dir", str(folder), "--output_dir", str(output_dir), "--max_steps", "2"]
    )
    assert status == 0
    summary = json.loads((output_dir / "train_results.json").read_text())
    assert summary["step"] == summary["total_steps"] == 2  # the command line's --max_steps won over the recipe's
    assert summary["learning_rate"] == 0.01 and summary["clips_seen"] == 3  # the recipe's, and the folder's clips
    assert (
        'cosine_with_min_lr, 0 warmup steps, {"min_lr_rate": 0.1}' in (output_dir / "final" / "README.md").read_text()
    )
    # YAML works the same way; an unknown key is an error naming it.
    (tmp_path / "recipe.yaml").write_text("max_length_seconds: 2.5\nreport_to: [none]\nmask_ratio: 0.6\n")
    model_args, data_args, args = parse_arguments([str(tmp_path / "recipe.yaml"), "--output_dir", "x"])
    assert (data_args.max_length_seconds, args.report_to, args.mask_ratio) == (2.5, ["none"], 0.6)
    (tmp_path / "bad.json").write_text(json.dumps({"clip_seconds": 1}))
    assert console_main([str(tmp_path / "bad.json"), "--output_dir", "x"]) == 2


def test_every_transformers_scheduler_is_accepted_and_a_metric_one_steps_on_the_loss(workdir, tmp_path, monkeypatch):
    from transformers import HfArgumentParser, SchedulerType

    from maskspec_hf.training.optim import METRIC_SCHEDULERS, build_scheduler
    from maskspec_hf.training.pretraining import PretrainingArguments

    parser = HfArgumentParser(PretrainingArguments)
    choices = next(a.choices for a in parser._actions if a.dest == "lr_scheduler_type")
    assert sorted(choices) == sorted(t.value for t in SchedulerType)
    needs = {
        "cosine_with_min_lr": {"min_lr_rate": 0.1},
        "cosine_warmup_with_min_lr": {"min_lr_rate": 0.1},
        "warmup_stable_decay": {"num_decay_steps": 2},
    }
    for name in choices:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        scheduler = build_scheduler(optimizer, name, 1, 4, needs.get(name))
        optimizer.step()
        scheduler.step(1.0) if name in METRIC_SCHEDULERS else scheduler.step()

    # End to end: reduce_lr_on_plateau with its own arguments, stepped on each step's loss.
    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
    kwargs = {"factor": 0.5, "patience": 0, "threshold": 0.5}
    output_dir = tmp_path / "plateau"
    main(
        synthetic_args(
            workdir,
            output_dir,
            "--max_steps",
            "3",
            "--synthetic_num_clips",
            "6",
            "--lr_scheduler_type",
            "reduce_lr_on_plateau",
            "--lr_scheduler_kwargs",
            json.dumps(kwargs),
        )
    )
    log = read_log(output_dir)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=log[0]["lr"])
    replay = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
    expected = []
    for record in log:
        expected.append(optimizer.param_groups[0]["lr"])
        replay.step(record["loss"])
    assert [r["lr"] for r in log] == pytest.approx(expected)
    assert log[-1]["lr"] < log[0]["lr"]  # threshold 0.5: no step improves enough, so the rate was cut


def test_report_to_passes_any_tracker_list_to_accelerate(caplog):
    from accelerate.tracking import get_available_trackers

    from maskspec_hf.training.tracking import accelerate_trackers

    available = {str(t) for t in get_available_trackers()}
    assert accelerate_trackers(["none"]) is None
    assert accelerate_trackers("all") == ["all"]
    wanted = ["tensorboard", "mlflow", "wandb"]
    assert accelerate_trackers(wanted) == ([n for n in wanted if n in available] or None)
    for name in set(wanted) - available:
        assert name in caplog.text  # a requested tracker that is not installed is named, not silently dropped
    _, _, args = parse_arguments(["--output_dir", "x", "--report_to", "tensorboard", "wandb"])
    assert args.report_to == ["tensorboard", "wandb"]


def test_a_step_whose_clips_were_all_skipped_does_not_train_and_resumes_exactly(workdir, tmp_path):
    from maskspec_hf.training.optim import build_scheduler

    steps = 9  # one clip per step: every broken clip (4 of the 12 rows per epoch) makes a step with no usable clip
    args = [
        "--config_name", str(workdir / "tiny.json"),
        "--data_files", str(workdir / "audioset" / "balanced_train.parquet"),
        "--cache_dir", str(workdir / "hf_cache"),
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "1",
        "--max_steps", str(steps),
        "--lr_scheduler_type", "linear",
        "--warmup_steps", "2",
        "--checkpointing_steps", "3",
        "--image_steps", "0",
        "--dataloader_num_workers", "0",
        "--report_to", "none",
        "--seed", "3",
    ]  # fmt: skip
    output_dir = tmp_path / "skips"
    summary = main(args + ["--output_dir", str(output_dir)])
    log = read_log(output_dir)
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    assert all(r["loss"] == r["loss"] and r["clips"] == 1 for r in log)  # no NaN loss, no empty step logged
    skipped = sum(summary["skipped_clips"].values())
    assert skipped >= 4 and summary["skipped_steps"] == skipped == log[-1]["skipped_steps"]
    # Neither the optimizer nor the schedule moved on the skipped steps.
    optimizer_state = torch.load(output_dir / "checkpoints" / "step-6" / "optimizer.bin", weights_only=False)
    assert {int(s["step"]) for s in optimizer_state["state"].values()} == {6}
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=summary["learning_rate"])
    schedule = build_scheduler(optimizer, "linear", 2, steps)
    expected = []
    for _ in log:
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert [r["lr"] for r in log] == pytest.approx(expected)

    reset_accelerate()
    resumed_dir = tmp_path / "skips-resumed"
    shutil.copytree(output_dir, resumed_dir)
    shutil.rmtree(resumed_dir / "final")
    resumed = main(
        args
        + ["--output_dir", str(resumed_dir), "--resume_from_checkpoint", str(resumed_dir / "checkpoints" / "step-3")]
    )
    assert resumed["skipped_steps"] == summary["skipped_steps"]
    for expected_record, got in zip(log, read_log(resumed_dir)):
        assert got["loss"] == pytest.approx(expected_record["loss"], abs=1e-5), got["step"]
        assert got["skipped_steps"] == expected_record["skipped_steps"]


def test_the_number_of_dataloader_workers_changes_no_batch(workdir):
    # tiny-cpu.json reads its data in-process (0 workers) because that is faster on 2 cores; the run must be the
    # one it would be with workers: the same clips, crops and masks at every step, hence the same losses.
    from accelerate.state import AcceleratorState, GradientState

    logs = {}
    for workers in ("0", "2"):
        out = workdir / f"workers-{workers}"
        args = common_args(workdir) + ["--dataloader_num_workers", workers, "--checkpointing_steps", "0"]
        main(args + ["--image_steps", "0", "--report_to", "none", "--log_clip_ids", "--output_dir", str(out)])
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        logs[workers] = read_log(out), (out / "logs" / "clip_ids.rank0.jsonl").read_text()
    (log_0, ids_0), (log_2, ids_2) = logs["0"], logs["2"]
    assert len(log_0) == STEPS and ids_0 == ids_2
    for without, with_workers in zip(log_0, log_2):
        assert with_workers["loss"] == pytest.approx(without["loss"], abs=1e-6), without["step"]
        assert with_workers["skipped"] == without["skipped"]


def test_a_run_from_the_spectrogram_cache_reads_the_same_clips_and_resumes_exactly(workdir, tmp_path):
    # tiny-cpu.json keeps whole-clip spectrograms in memory (--feature_cache_gb). The run reads the rows in the
    # order it would without the cache (only the crops' positions differ: they start on a frame), and a run resumed
    # with an empty cache repeats the uninterrupted one.
    steps = 8  # 3 batches of 4 per epoch (12 rows, 4 of them broken): the run crosses two epochs
    args = [
        "--config_name", str(workdir / "tiny.json"),
        "--data_files", str(workdir / "audioset" / "balanced_train.parquet"),
        "--cache_dir", str(workdir / "hf_cache"),
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "4",
        "--max_steps", str(steps),
        "--learning_rate", "0.05",
        "--warmup_steps", "2",
        "--checkpointing_steps", "3",
        "--log_clip_ids",
        *QUIET_RUN[:2], *QUIET_RUN[4:],
        "--seed", "5",
    ]  # fmt: skip
    cached_dir, decoded_dir = tmp_path / "cached", tmp_path / "decoded"
    summary = main(args + ["--feature_cache_gb", "1", "--output_dir", str(cached_dir)])
    assert summary["spectrogram_cache"].startswith("8 clips' spectrograms held")
    assert summary["spectrogram_cache"].endswith("; 12 clips decoded whole")  # each row once, the 4 broken ones too
    reset_accelerate()
    decoded = main(args + ["--output_dir", str(decoded_dir)])
    assert decoded["spectrogram_cache"] is None
    ids = {d: (d / "logs" / "clip_ids.rank0.jsonl").read_text() for d in (cached_dir, decoded_dir)}
    assert ids[cached_dir] == ids[decoded_dir]
    assert summary["skipped_clips"] == decoded["skipped_clips"] and sum(summary["skipped_clips"].values()) > 4
    log = read_log(cached_dir)
    assert [r["skipped"] for r in log] == [r["skipped"] for r in read_log(decoded_dir)]

    reset_accelerate()
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(cached_dir, resumed_dir)
    shutil.rmtree(resumed_dir / "final")
    checkpoint = resumed_dir / "checkpoints" / "step-3"
    resumed = main(args + ["--feature_cache_gb", "1", "--output_dir", str(resumed_dir), "--resume_from_checkpoint",
                           str(checkpoint)])  # fmt: skip
    assert resumed["final_loss"] == pytest.approx(summary["final_loss"], abs=1e-5)
    for expected, got in zip(log, read_log(resumed_dir)):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5), got["step"]


class SlowingClock:
    """`time` for the training loop: each reading advances a fake clock by `pace` seconds, which `slow_down` raises
    (a machine that gets busy after the first steps), so the test does not depend on this machine's speed."""

    def __init__(self, pace: float):
        self.now, self.pace, self.readings = 0.0, pace, 0

    def perf_counter(self) -> float:
        self.readings += 1
        self.now += self.pace
        return self.now


def test_a_run_that_slows_after_the_fit_is_sized_again_and_anneals_within_its_budget(workdir, tmp_path, monkeypatch):
    from maskspec_hf.training import pretraining

    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
    clock = SlowingClock(pace=1.0)  # two readings a step: 2 s a step until the fit at step 12, then 6 s
    monkeypatch.setattr(pretraining, "time", clock)
    monkeypatch.setattr(pretraining, "REFIT_AT_STEP", 16)
    seen = []

    def on_step(run, record):
        seen.append((run.state.step, run.total_steps))
        if run.state.step == 11:
            clock.pace = 3.0

    monkeypatch.setattr(pretraining, "train", partial(pretraining.train, on_step=on_step))
    output_dir = tmp_path / "slowing"
    summary = synthetic_run(workdir, output_dir, max_steps=0, max_train_minutes=2, fit_schedule_to_time_limit=True,
                            learning_rate=1e-3, scale_lr=False)  # fmt: skip
    first_fit = dict(seen)[12]  # ~58 steps at 2 s: 36 steps more than fit at 6 s
    assert summary["total_steps"] == summary["step"] < first_fit - 20, (summary, first_fit)
    assert not summary["stopped_by_time_limit"]
    assert clock.now - 1.0 <= 120  # the schedule ended inside the 2-minute budget (from the first reading) ...
    records = read_log(output_dir)
    assert records[-1]["lr"] < 0.02 * 1e-3  # ... annealed: a cosine to (almost) zero by its new end
    assert [total for step, total in seen if step >= 16] == [summary["total_steps"]] * (summary["step"] - 15)
