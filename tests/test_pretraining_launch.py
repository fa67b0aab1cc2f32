"""A finished multi-process (torchrun, gloo) pre-training run exits by itself, also on a machine whose cores are busy.

Rank 0 used to hang after `train()` returned, now and then on a loaded machine: the DDP Reducer, freed last, destroyed
the gloo process group while holding the GIL, and a gloo worker thread waited for the GIL (see
`maskspec_hf.training.pretraining.end_distributed_run`). The launcher below records, on every process, how many DDP wrappers are
still alive when the process group is destroyed: none may be, or the Reducer frees the group after its destruction.

Each process reads its own shards, whose second row is a broken clip: with one clip per batch, both processes meet a
step without a usable clip at the same time, and both must skip it alike (no optimizer step, no NaN loss).
"""

import json
import os
import subprocess
import sys

from audioset_fixture import write_audioset_parquet
from test_pretraining import TINY, run_to_the_end


RUNS = 3
HOGS = min(os.cpu_count() or 2, 8)  # a busy-looping process per core (up to 8)

LAUNCHER = """
import gc, json, os, sys
from pathlib import Path

import torch.distributed
from torch.nn.parallel import DistributedDataParallel

from maskspec_hf.cli.pretrain import main

destroy = torch.distributed.destroy_process_group


def recording_destroy(group=None):
    alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    Path(os.environ["PROBE_DIR"], f"destroy.rank{os.environ['RANK']}.json").write_text(json.dumps({"ddp_alive": alive}))
    destroy(group)


torch.distributed.destroy_process_group = recording_destroy
sys.exit(main())
"""


def test_torchrun_runs_exit_by_themselves_while_every_core_is_busy(tmp_path):
    files = [
        write_audioset_parquet(tmp_path / "shards" / f"train-{i:05d}-of-00004.parquet", 4, prefix=f"shard{i}")
        for i in range(4)
    ]  # rows: good, broken, good, good, broken, ...
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    launcher = tmp_path / "launch_pretraining.py"
    launcher.write_text(LAUNCHER)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MASKSPEC_HF_CACHE": str(tmp_path / "maskspec_cache"),
        "PYTHONUNBUFFERED": "1",
    }
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        for attempt in range(RUNS):
            output_dir, probes = tmp_path / f"run{attempt}", tmp_path / f"probes{attempt}"
            probes.mkdir()
            command = [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(launcher),
                "--output_dir", str(output_dir),
                "--config_name", str(tmp_path / "tiny.json"),
                "--data_files", *map(str, files),
                "--streaming", "--shuffle_buffer_size", "0",
                "--max_length_seconds", "1",
                "--per_device_train_batch_size", "1",
                "--max_steps", "3",
                "--checkpointing_steps", "1",
                "--image_steps", "0",
                "--dataloader_num_workers", "1",
                "--report_to", "none",
            ]  # fmt: skip
            returncode, output = run_to_the_end(command, {**env, "PROBE_DIR": str(probes)})
            assert returncode == 0, f"run {attempt}: exit status {returncode}\n{output[-4000:]}"
            summary = json.loads((output_dir / "train_results.json").read_text())
            assert summary["skipped_steps"] == 1 and summary["step"] == 3
            log = [json.loads(line) for line in (output_dir / "logs" / "train_log.jsonl").read_text().splitlines()]
            assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] == r["loss"] for r in log)  # no NaN
            for rank in (0, 1):
                probe = json.loads((probes / f"destroy.rank{rank}.json").read_text())
                assert probe == {"ddp_alive": 0}, f"run {attempt}, rank {rank}: DDP alive at destroy_process_group"
            fingerprints = json.loads((output_dir / "logs" / "weights_fingerprints.json").read_text())["fingerprints"]
            assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
