# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""MaskSpec-HF against transformers' own AST / ViTMAE: the same work, timed side by side in one process.

    python benchmarks/run.py [--quick] [--json out.json] [--threads 2] [--only frontend,pretrain,...]

Every measure runs ours and the peer alternately in this process (ours, peer, peer, ours, ...) after warm-up, so load
from other processes hits both; the table shows medians and a ratio where > 1 always means *ours is better*:
ours / peer for rates (clips/s, GFLOP/s), peer / ours for latency (ms) and memory (MiB). `--json` writes one record
per measure with `name`, `ours`, `peer`, `unit`, `ratio` (plus `target`, `met`, `note` and the raw samples).

Measure groups (`--only`): `frontend`, `pretrain` (fp32 pre-training steps), `rss` (peak RSS, one child process per
model), `inference`, `pipeline` (decode + features per DataLoader worker), `peak` (matmul peak), `bf16`. The FLOP
efficiency rows are derived from `peak` and the timed groups. See benchmarks/README.md for a full run and notes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


# Threads are fixed before torch is imported (also for the RSS child processes, which inherit the environment).
def _early_threads() -> int:
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 2


_THREADS = _early_threads()
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(_THREADS))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    ASTConfig,
    ASTFeatureExtractor,
    ASTForAudioClassification,
    ViTMAEConfig,
    ViTMAEForPreTraining,
)


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from maskspec_hf import (  # noqa: E402
    MaskSpecConfig,
    MaskSpecFeatureExtractor,
    MaskSpecForAudioClassification,
    MaskSpecForPreTraining,
)
from maskspec_hf.data.synthetic import synthesize_clip  # noqa: E402
from maskspec_hf.training.hardware import cpu_flags, cpu_has_bf16_units  # noqa: E402
from maskspec_hf.training.optim import adamw  # noqa: E402


transformers.logging.set_verbosity_error()

NUM_LABELS = 527  # AudioSet
MEL = 128
FRAMES = 1024  # both sides get 64 x 8 = 512 patches (ViTMAE: 128 x 1024 image; AST: max_length 1024)
PATCH = 16
CONFIG_16K = dict(sampling_rate=16000, n_fft=400, win_length=400, hop_length=160, f_max=8000.0)

# Targets from the performance issue; ratio > 1 means ours is better.
TARGETS = {
    "frontend": 10.0,
    "pretrain_fp32": 1.0,
    "inference_fp32": 1.0,
    "pretrain_bf16": 2.0,
    "inference_bf16": 1.8,
    "pipeline": 3.0,
    "rss": 1.0,
}


# ----------------------------------------------------------------------------------------------------------------------
# Records and timing
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    name: str
    ours: float
    peer: float
    unit: str
    ratio: float  # > 1: ours better (ours / peer for rates, peer / ours for ms and MiB), from the medians
    paired_ratio: float | None = None  # median over repetitions of the ratio of adjacent ours / peer runs
    cpu_ratio: float | None = None  # the same from process CPU time (less sensitive to other processes' load)
    target: float | None = None
    met: bool | None = None
    note: str = ""
    ours_samples: list[float] = dataclasses.field(default_factory=list)
    peer_samples: list[float] = dataclasses.field(default_factory=list)


RECORDS: list[Record] = []
# Results later measures derive from (the Tiny step's consumption, FLOP rates, the matmul peaks).
STATE: dict[str, float] = {}


def add_record(
    name,
    ours,
    peer,
    unit,
    lower_is_better=False,
    target=None,
    note="",
    ours_samples=(),
    peer_samples=(),
    paired_ratio=None,
    cpu_ratio=None,
):
    ratio = (peer / ours) if lower_is_better else (ours / peer)
    record = Record(
        name=name,
        ours=ours,
        peer=peer,
        unit=unit,
        ratio=ratio,
        paired_ratio=paired_ratio,
        cpu_ratio=cpu_ratio,
        target=target,
        met=None if target is None else bool(ratio >= target),
        note=note,
        ours_samples=[round(v, 6) for v in ours_samples],
        peer_samples=[round(v, 6) for v in peer_samples],
    )
    RECORDS.append(record)
    status = "" if record.met is None else ("  target met" if record.met else f"  target {target:g}x MISSED")
    extra = "" if paired_ratio is None else f" (paired {paired_ratio:.3f}, cpu {cpu_ratio:.3f})"
    print(f"  -> {name}: ours {ours:.4g} / peer {peer:.4g} {unit}, ratio {ratio:.3f}{extra}{status}", flush=True)
    return record


@dataclasses.dataclass
class Timings:
    wall: dict[str, list[float]]  # seconds per call
    cpu: dict[str, list[float]]  # process CPU seconds (all threads) per call


def alternate(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> Timings:
    """Time each function: `warmup` untimed rounds, then `reps` rounds in alternating order (A B, B A, ...)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    timings = Timings({name: [] for name in names}, {name: [] for name in names})
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            timings.wall[name].append(time.perf_counter() - start)
            timings.cpu[name].append(time.process_time() - start_cpu)
    return timings


def record_timed(
    name: str,
    timings: Timings,
    ours: str = "ours",
    peer: str = "peer",
    work: float = 1.0,
    latency: bool = False,
    target: float | None = None,
    note: str = "",
) -> Record:
    """A record from alternated timings: rates (`work` clips per call, clips/s) or latency (ms)."""
    if latency:
        values = {k: [1000 * t for t in timings.wall[k]] for k in (ours, peer)}
    else:
        values = {k: [work / t for t in timings.wall[k]] for k in (ours, peer)}
    pairs = [p / o for o, p in zip(timings.wall[ours], timings.wall[peer])]
    return add_record(
        name,
        median(values[ours]),
        median(values[peer]),
        "ms" if latency else "clips/s",
        lower_is_better=latency,
        target=target,
        note=note,
        ours_samples=values[ours],
        peer_samples=values[peer],
        paired_ratio=median(pairs),
        cpu_ratio=median(timings.cpu[peer]) / median(timings.cpu[ours]),
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


def log(message: str) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# Models (same dims on both sides)
# ----------------------------------------------------------------------------------------------------------------------

SIZES = {"tiny": (192, 3, 768), "small": (384, 6, 1536)}


def ours_config(size: str, **kwargs) -> MaskSpecConfig:
    # max_frames=1024: a 1024-frame input is one window (with the default 1000 it would be split into two).
    return MaskSpecConfig.from_preset(size, max_frames=FRAMES, **kwargs)


def vitmae_config(size: str) -> ViTMAEConfig:
    hidden, heads, ffn = SIZES[size]
    return ViTMAEConfig(
        image_size=MEL,
        patch_size=PATCH,
        num_channels=1,
        hidden_size=hidden,
        num_hidden_layers=12,
        num_attention_heads=heads,
        intermediate_size=ffn,
        decoder_hidden_size=512,
        decoder_num_hidden_layers=8,
        decoder_num_attention_heads=16,
        decoder_intermediate_size=2048,
        mask_ratio=0.75,
        norm_pix_loss=True,
    )


def ast_config(size: str) -> ASTConfig:
    hidden, heads, ffn = SIZES[size]
    return ASTConfig(
        hidden_size=hidden,
        num_hidden_layers=12,
        num_attention_heads=heads,
        intermediate_size=ffn,
        num_mel_bins=MEL,
        max_length=FRAMES,
        patch_size=PATCH,
        frequency_stride=PATCH,
        time_stride=PATCH,
        num_labels=NUM_LABELS,
    )


def pretraining_step(side: str, size: str, batch: int, frames: int = FRAMES, bf16: bool = False, seed: int = 0):
    """A closure doing one pre-training step (forward, backward, AdamW) on a fixed random batch."""
    torch.manual_seed(seed)
    if side == "ours":
        model = MaskSpecForPreTraining(ours_config(size))
        inputs = {"input_values": torch.randn(batch, frames, MEL)}
    else:
        model = ViTMAEForPreTraining(vitmae_config(size))
        # ViTMAE's image is [channels, height = mel, width = time]; it rejects a non-square image_size, so the
        # 128 x 128 position table is interpolated to the 8 x 64 grid.
        inputs = {"pixel_values": torch.randn(batch, 1, MEL, frames), "interpolate_pos_encoding": True}
    return training_step(model, inputs, bf16)


def training_step(model: torch.nn.Module, inputs: dict, bf16: bool = False, fused_adamw: bool = True):
    """A closure doing one pre-training step of `model` on `inputs`: forward (bf16 autocast if asked), backward,
    AdamW (the package's, fused on CPU; `fused_adamw=False`: torch's CPU default, a loop over the parameters). Shared
    by every step benchmark, so each side pays for the same optimizer work."""
    model.train()
    if fused_adamw:
        optimizer = adamw(model.parameters(), "cpu", lr=1.0e-4)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1.0e-4, foreach=False)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        return loss

    return step


def inference_call(side: str, size: str, batch: int, dtype=torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    if side == "ours":
        model = MaskSpecForAudioClassification(ours_config(size, num_labels=NUM_LABELS))
    else:
        model = ASTForAudioClassification(ast_config(size))
    model = model.eval().to(dtype)
    inputs = torch.randn(batch, FRAMES, MEL).to(dtype)

    def call():
        with torch.inference_mode():
            return model(input_values=inputs).logits

    return call


# ----------------------------------------------------------------------------------------------------------------------
# Analytic FLOPs (multiply-add = 2 FLOPs; matmuls and attention only; backward = 2 x forward)
# ----------------------------------------------------------------------------------------------------------------------


def _block_flops(seq: int, width: int, ffn: int) -> float:
    # qkv (3 w^2) + output projection (w^2) + MLP (2 w f) per token, and QK^T + AV (2 s^2 w) per sequence.
    return 2 * seq * (4 * width * width + 2 * width * ffn) + 4 * seq * seq * width


def pretraining_flops(config: MaskSpecConfig, num_patches: int, batch: int) -> float:
    visible = num_patches - math.floor(num_patches * config.mask_ratio)
    d, dd, p = config.hidden_size, config.decoder_hidden_size, config.patch_dim
    forward = (
        2 * num_patches * p * d  # patch projection (all patches, before masking)
        + config.num_hidden_layers * _block_flops(visible, d, config.intermediate_size)
        + 2 * visible * d * dd  # decoder embedding
        + config.decoder_num_hidden_layers * _block_flops(num_patches, dd, config.decoder_intermediate_size)
        + 2 * num_patches * dd * p  # prediction head
    )
    return 3 * forward * batch


def inference_flops(config: MaskSpecConfig, num_patches: int, batch: int) -> float:
    d = config.hidden_size
    forward = (
        2 * num_patches * config.patch_dim * d
        + config.num_hidden_layers * _block_flops(num_patches, d, config.intermediate_size)
        + 2 * d * config.num_labels
    )
    return forward * batch


# ----------------------------------------------------------------------------------------------------------------------
# Measures
# ----------------------------------------------------------------------------------------------------------------------


def measure_frontend(args) -> None:
    log(f"front end: {args.frontend_clips} clips of 10 s, ours (32 kHz and 16 kHz) vs ASTFeatureExtractor (16 kHz)")
    clips32 = [synthesize_clip(i, clip_seconds=10.0, sampling_rate=32000)[0] for i in range(args.frontend_clips)]
    clips16 = [synthesize_clip(i, clip_seconds=10.0, sampling_rate=16000)[0] for i in range(args.frontend_clips)]
    ours = MaskSpecFeatureExtractor()
    ours16 = MaskSpecFeatureExtractor(**CONFIG_16K)
    peer = ASTFeatureExtractor()  # 16 kHz, 128 mel, max_length 1024 (Kaldi fbank in numpy: torchaudio is absent)
    fns = {
        "ours": lambda: ours(clips32, sampling_rate=32000, return_tensors="pt"),
        "ours16": lambda: ours16(clips16, sampling_rate=16000, return_tensors="pt"),
        "ours_1thread": lambda: _one_thread(lambda: ours(clips32, sampling_rate=32000, return_tensors="pt")),
        "peer": lambda: peer(clips16, sampling_rate=16000, return_tensors="pt"),
    }
    timings = alternate(fns, reps=args.frontend_reps)
    n = args.frontend_clips
    backend = "torchaudio Kaldi fbank" if _has_torchaudio() else "numpy, one clip at a time (no torchaudio)"
    record_timed(
        "frontend_clips_per_s",
        timings,
        work=n,
        target=TARGETS["frontend"],
        note=f"{n} x 10 s clips, each at its native rate: ours 32 kHz (n_fft 1024, hop 320), AST 16 kHz ({backend})",
    )
    record_timed(
        "frontend_16k_clips_per_s",
        timings,
        ours="ours16",
        work=n,
        target=TARGETS["frontend"],
        note="apples to apples: ours at 16 kHz (n_fft 400, hop 160, f_max 8000, 128 mel) vs AST 16 kHz",
    )
    record_timed(
        "frontend_1thread_clips_per_s",
        timings,
        ours="ours_1thread",
        work=n,
        target=TARGETS["frontend"],
        note="ours at 32 kHz with torch.set_num_threads(1) (as in a DataLoader worker) vs AST 16 kHz as above "
        "(its numpy path is per clip; its BLAS calls may use 2 threads: see the cpu ratio)",
    )


def _one_thread(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def _has_torchaudio() -> bool:
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        return False
    return True


def measure_pretraining(args) -> None:
    for size in args.sizes:
        batch = args.pretrain_batch
        log(f"pre-training step fp32, {size}, batch {batch}, {FRAMES} frames, mask 0.75: ours vs ViTMAEForPreTraining")
        fns = {"ours": pretraining_step("ours", size, batch), "peer": pretraining_step("peer", size, batch)}
        # Two warm-up rounds: AdamW allocates its state in the first step, and on this machine the first steps of a
        # process are often several times slower (fresh memory).
        timings = alternate(fns, reps=args.pretrain_reps, warmup=2)
        del fns
        gc.collect()
        record_timed(
            f"pretrain_{size}_fp32_clips_per_s",
            timings,
            work=batch,
            target=TARGETS["pretrain_fp32"],
            note=f"forward + backward + AdamW, batch {batch}, 128 x {FRAMES} (512 patches, 128 visible); "
            "ViTMAE adds a CLS token",
        )
        STATE[f"pretrain_{size}_fp32_s"] = median(timings.wall["ours"])
        STATE[f"pretrain_{size}_batch"] = batch


def measure_rss(args) -> None:
    for size in args.sizes:
        peaks, baselines = {}, {}
        for side in ("ours", "peer"):
            log(f"peak RSS, {size}, {side}: child process, 2 pre-training steps at batch {args.pretrain_batch}")
            spec = json.dumps({"side": side, "size": size, "batch": args.pretrain_batch})
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--rss-child", spec],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            peaks[side], baselines[side] = result["peak_mib"], result["baseline_mib"]
        add_record(
            f"pretrain_{size}_peak_rss_mib",
            peaks["ours"],
            peaks["peer"],
            "MiB",
            lower_is_better=True,
            target=TARGETS["rss"],
            note=f"peak RSS (VmHWM) of a child process doing 2 steps at batch {args.pretrain_batch}; after imports "
            f"(before the model): ours {baselines['ours']:.0f} MiB, peer {baselines['peer']:.0f} MiB",
        )


def _vm_hwm_mib() -> float:
    """Peak resident set of this process's address space (VmHWM): unlike ru_maxrss it does not inherit the peak of
    the parent it was forked from."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(spec: str) -> None:
    spec = json.loads(spec)
    torch.set_num_threads(_THREADS)
    torch.set_flush_denormal(True)
    baseline = _vm_hwm_mib()
    step = pretraining_step(spec["side"], spec["size"], spec["batch"])
    for _ in range(2):  # the second step runs with AdamW's state allocated
        step()
    print(json.dumps({"peak_mib": _vm_hwm_mib(), "baseline_mib": baseline}))


def measure_inference(args) -> None:
    for size in args.sizes:
        log(f"inference fp32, {size}: MaskSpecForAudioClassification vs ASTForAudioClassification, 527 labels")
        fns = {"ours": inference_call("ours", size, 1), "peer": inference_call("peer", size, 1)}
        timings = alternate(fns, reps=args.latency_reps, warmup=2)
        record_timed(
            f"infer_{size}_fp32_b1_latency_ms",
            timings,
            latency=True,
            target=TARGETS["inference_fp32"],
            note=f"batch 1, 128 x {FRAMES}: ours 512 tokens, AST 514 (CLS + distillation)",
        )
        batch = args.infer_batch
        fns = {"ours": inference_call("ours", size, batch), "peer": inference_call("peer", size, batch)}
        timings = alternate(fns, reps=args.throughput_reps)
        record_timed(
            f"infer_{size}_fp32_b{batch}_clips_per_s",
            timings,
            work=batch,
            target=TARGETS["inference_fp32"],
            note=f"batch {batch}, 128 x {FRAMES}",
        )
        STATE[f"infer_{size}_fp32_s"] = median(timings.wall["ours"])
        STATE[f"infer_{size}_batch"] = batch
        del fns
        gc.collect()


class _DecodeAndFeatures:
    """DataLoader collate: decode each row's audio (resampled to 32 kHz by the Audio feature) and compute features."""

    def __init__(self):
        self.extractor = MaskSpecFeatureExtractor()

    def __call__(self, rows):
        waves = [row["audio"].get_all_samples().data.mean(dim=0).numpy() for row in rows]
        return self.extractor(waves, sampling_rate=32000, return_tensors="pt")


def measure_pipeline(args) -> None:
    import datasets
    import soundfile as sf
    from torch.utils.data import DataLoader

    n = args.pipeline_clips
    log(f"input pipeline: {n} FLAC clips (48 kHz, 10 s) -> Audio(sampling_rate=32000) + features, 1 DataLoader worker")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n):
            wave, _ = synthesize_clip(i, seed=1, clip_seconds=10.0, sampling_rate=48000)
            path = os.path.join(tmp, f"clip{i:03d}.flac")
            sf.write(path, wave, 48000, format="FLAC", subtype="PCM_16")
            paths.append(path)
        dataset = datasets.Dataset.from_dict({"audio": paths}).cast_column(
            "audio", datasets.Audio(sampling_rate=32000)
        )

        # Split of the work, in this process (one thread, as in a worker): decode only, then features only.
        torch.set_num_threads(1)
        start = time.perf_counter()
        waves = [row["audio"].get_all_samples().data.mean(dim=0).numpy() for row in dataset]
        decode_rate = n / (time.perf_counter() - start)
        extractor = MaskSpecFeatureExtractor()
        start = time.perf_counter()
        for i in range(0, n, 8):
            extractor(waves[i : i + 8], sampling_rate=32000, return_tensors="pt")
        feature_rate = n / (time.perf_counter() - start)
        torch.set_num_threads(args.threads)

        loader = DataLoader(
            dataset, batch_size=8, num_workers=1, collate_fn=_DecodeAndFeatures(), persistent_workers=True
        )
        for _ in loader:  # warm-up epoch (starts the worker)
            pass
        rates = []
        for _ in range(args.pipeline_epochs):
            start = time.perf_counter()
            for batch in loader:
                assert batch["input_values"].shape[0] > 0 and batch["input_values"].shape[2] == MEL
            rates.append(n / (time.perf_counter() - start))
        del loader

    batch = STATE.get("pretrain_tiny_batch")
    if "pretrain_tiny_fp32_s" in STATE:
        consumption = batch / STATE["pretrain_tiny_fp32_s"]
        peer_note = f"peer = clips/s the Tiny fp32 pre-training step (batch {batch}, this run) consumes"
    else:
        log("  (no Tiny pre-training measure in this run: timing 2 Tiny steps for the consumption rate)")
        batch = args.pretrain_batch
        step = pretraining_step("ours", "tiny", batch)
        step()
        start = time.perf_counter()
        step()
        consumption = batch / (time.perf_counter() - start)
        peer_note = f"peer = clips/s one Tiny fp32 pre-training step (batch {batch}) consumes"
    add_record(
        "pipeline_clips_per_s_per_worker",
        median(rates),
        consumption,
        "clips/s",
        target=TARGETS["pipeline"],
        note=f"ours = decode FLAC 48 kHz -> 32 kHz (datasets Audio / torchcodec) + features, 1 DataLoader worker "
        f"(1 thread); {peer_note}. In-process split: decode {decode_rate:.1f} clips/s, features "
        f"{feature_rate:.1f} clips/s",
        ours_samples=rates,
        peer_samples=[consumption],
    )


def _matmul_rate(n: int, dtype, layout: str, reps: int) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    left = a.t() if layout[0] == "T" else a
    right = b.t() if layout[1] == "T" else b
    torch.matmul(left, right)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(left, right)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def measure_peak(args) -> None:
    log("matmul peak, fp32 and bf16 (torch.matmul, square, 3 layouts, best of a few)")
    # bf16 NN on a CPU without AVX512-BF16/AMX runs a slow fallback (~1 GFLOP/s): keep its matrices at 1024.
    rates = {}
    for dtype, sizes in ((torch.float32, args.peak_sizes_fp32), (torch.bfloat16, args.peak_sizes_bf16)):
        for n in sizes:
            for layout in ("NN", "NT", "TN"):
                rates[(str(dtype).split(".")[-1], n, layout)] = _matmul_rate(n, dtype, layout, args.peak_reps)
    fp32 = max(v for k, v in rates.items() if k[0] == "float32")
    bf16 = max(v for k, v in rates.items() if k[0] == "bfloat16")
    STATE["peak_fp32"], STATE["peak_bf16"] = fp32, bf16
    STATE["peak_args"] = args
    detail = ", ".join(f"{k[0]} {k[1]} {k[2]}: {v:.1f}" for k, v in rates.items())
    add_record(
        "matmul_peak_gflops_bf16_vs_fp32",
        bf16,
        fp32,
        "GFLOP/s",
        note=f"ours column = bf16 peak, peer column = fp32 peak (ratio = bf16 / fp32); GFLOP/s by dtype, n, "
        f"layout: {detail}; mkldnn bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}",
    )


def measure_bf16(args) -> None:
    batch, frames = args.bf16_pretrain_batch, args.bf16_pretrain_frames
    log(f"bf16 pre-training step (autocast), tiny, batch {batch}, {frames} frames vs ViTMAE fp32 (same batch)")
    ours = pretraining_step("ours", "tiny", batch, frames=frames, bf16=True)
    peer = pretraining_step("peer", "tiny", batch, frames=frames)
    # Warm the bf16 kernels on a short input first: one full bf16 step costs minutes on a CPU without bf16 units.
    pretraining_step("ours", "tiny", 1, frames=64, bf16=True)()
    peer()
    peer()
    timings = alternate({"ours": ours, "peer": peer}, reps=args.bf16_pretrain_reps, warmup=int(_has_bf16_units()))
    record_timed(
        "pretrain_tiny_bf16_vs_vitmae_fp32_clips_per_s",
        timings,
        work=batch,
        target=TARGETS["pretrain_bf16"],
        note=f"ours: torch.autocast('cpu', bfloat16) forward, fp32 master weights and AdamW; batch {batch}, "
        f"128 x {frames} (batch 1 on CPUs without AVX512-BF16/AMX, where one bf16 step at batch 8 takes minutes); "
        "one warm-up step at full size only with bf16 units",
    )
    flops = pretraining_flops(ours_config("tiny"), (frames // PATCH) * (MEL // PATCH), batch)
    STATE["pretrain_bf16_gflops"] = flops / median(timings.wall["ours"]) / 1e9
    del ours, peer
    gc.collect()

    log("bf16 inference (weights and inputs in bf16, as pipeline(dtype=torch.bfloat16)), tiny, vs AST fp32")
    fns = {"ours": inference_call("ours", "tiny", 1, dtype=torch.bfloat16), "peer": inference_call("peer", "tiny", 1)}
    timings = alternate(fns, reps=args.bf16_latency_reps)
    record_timed(
        "infer_tiny_bf16_vs_ast_fp32_b1_latency_ms",
        timings,
        latency=True,
        target=TARGETS["inference_bf16"],
        note="ours in bf16 (model.to(bfloat16)), AST in fp32; batch 1",
    )
    batch = args.bf16_infer_batch
    fns = {
        "ours": inference_call("ours", "tiny", batch, dtype=torch.bfloat16),
        "peer": inference_call("peer", "tiny", batch),
    }
    fns["peer"]()
    timings = alternate(fns, reps=args.bf16_throughput_reps, warmup=0)
    record_timed(
        f"infer_tiny_bf16_vs_ast_fp32_b{batch}_clips_per_s",
        timings,
        work=batch,
        target=TARGETS["inference_bf16"],
        note=f"ours in bf16, AST in fp32; batch {batch} (warmed at batch 1 above)",
    )
    STATE["infer_bf16_gflops"] = (
        inference_flops(ours_config("tiny", num_labels=NUM_LABELS), 512, batch) / median(timings.wall["ours"]) / 1e9
    )


def remeasure_peak() -> None:
    """The peak again at the end of the run (other processes' load changes over a run): keep the higher."""
    args = STATE.get("peak_args")
    if args is None:
        return
    log("matmul peak again (the higher of the two measurements counts)")
    fp32 = max(
        _matmul_rate(n, torch.float32, layout, args.peak_reps)
        for n in args.peak_sizes_fp32[-1:]
        for layout in ("NN", "NT", "TN")
    )
    bf16 = max(_matmul_rate(n, torch.bfloat16, "TN", args.peak_reps) for n in args.peak_sizes_bf16)
    record = next(r for r in RECORDS if r.name == "matmul_peak_gflops_bf16_vs_fp32")
    record.note += f"; at the end of the run: fp32 {fp32:.1f}, bf16 (TN) {bf16:.1f}"
    STATE["peak_fp32"], STATE["peak_bf16"] = max(fp32, STATE["peak_fp32"]), max(bf16, STATE["peak_bf16"])
    record.ours, record.peer = STATE["peak_bf16"], STATE["peak_fp32"]
    record.ratio = record.ours / record.peer


def flop_efficiency_records() -> None:
    num_patches = (FRAMES // PATCH) * (MEL // PATCH)
    rows = []
    for size in ("tiny", "small"):
        if f"pretrain_{size}_fp32_s" in STATE:
            batch = STATE[f"pretrain_{size}_batch"]
            flops = pretraining_flops(ours_config(size), num_patches, batch)
            rows.append(
                (
                    f"flops_pretrain_{size}_fp32",
                    flops / STATE[f"pretrain_{size}_fp32_s"] / 1e9,
                    "fp32",
                    f"{flops / 1e9:.0f} GFLOP per step (batch {batch}, 3 x forward)",
                )
            )
        if f"infer_{size}_fp32_s" in STATE:
            batch = STATE[f"infer_{size}_batch"]
            flops = inference_flops(ours_config(size, num_labels=NUM_LABELS), num_patches, batch)
            rows.append(
                (
                    f"flops_infer_{size}_fp32",
                    flops / STATE[f"infer_{size}_fp32_s"] / 1e9,
                    "fp32",
                    f"{flops / 1e9:.0f} GFLOP per batch of {batch}",
                )
            )
    if "pretrain_bf16_gflops" in STATE:
        rows.append(("flops_pretrain_tiny_bf16", STATE["pretrain_bf16_gflops"], "bf16", "autocast step"))
    if "infer_bf16_gflops" in STATE:
        rows.append(("flops_infer_tiny_bf16", STATE["infer_bf16_gflops"], "bf16", "bf16 weights"))
    for name, achieved, dtype, note in rows:
        peak = STATE.get(f"peak_{dtype}")
        if peak is None:
            continue
        add_record(
            name,
            achieved,
            peak,
            "GFLOP/s",
            note=f"ours = analytic FLOPs (matmuls + attention) / median time; peer column = measured {dtype} "
            f"matmul peak; ratio = fraction of peak; {note}",
        )


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------

GROUPS = ("frontend", "pretrain", "rss", "inference", "pipeline", "peak", "bf16")


def settings(args) -> None:
    """Sizes and repetitions: `--quick` keeps every measure but shrinks it to finish in a few minutes."""
    full = dict(
        sizes=["tiny", "small"],
        frontend_clips=32,
        frontend_reps=5,
        pretrain_batch=8,
        pretrain_reps=3,
        latency_reps=7,
        infer_batch=16,
        throughput_reps=3,
        pipeline_clips=16,
        pipeline_epochs=3,
        peak_sizes_fp32=[1024, 2048],
        peak_sizes_bf16=[1024],
        peak_reps=3,
        bf16_pretrain_batch=1,
        bf16_pretrain_frames=FRAMES,
        bf16_pretrain_reps=1,
        bf16_latency_reps=3,
        bf16_infer_batch=16,
        bf16_throughput_reps=1,
    )
    quick = dict(
        full,
        sizes=["tiny"],
        frontend_reps=3,
        pretrain_batch=2,
        pretrain_reps=2,
        latency_reps=5,
        infer_batch=16,
        throughput_reps=2,
        pipeline_clips=8,
        pipeline_epochs=2,
        peak_sizes_fp32=[1024],
        peak_sizes_bf16=[512],
        peak_reps=2,
        bf16_pretrain_frames=256,
        bf16_latency_reps=2,
        bf16_infer_batch=4,
    )
    chosen = dict(quick if args.quick else full)
    if _has_bf16_units() and not args.quick:
        # With AVX512-BF16/AMX a bf16 step is fast: measure it at the fp32 measure's batch, with repetitions.
        chosen.update(bf16_pretrain_batch=full["pretrain_batch"], bf16_pretrain_reps=3, bf16_throughput_reps=3)
    for key, value in chosen.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def _cpu_info() -> tuple[str, set[str]]:
    """(model name, feature flags) of the first CPU in /proc/cpuinfo; ("unknown", set()) where there is none."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu, cpu_flags()


def _has_bf16_units() -> bool:
    return cpu_has_bf16_units()  # what `--mixed_precision auto` checks


def machine_info(args) -> dict:
    cpu, flags = _cpu_info()
    import datasets

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "threads": args.threads,
        "avx2": "avx2" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "numpy": np.__version__,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "quick": bool(args.quick),
        "load_average_start": os.getloadavg(),
    }


def print_table(info: dict) -> None:
    print()
    print(
        f"MaskSpec-HF vs transformers peers: {info['cpu']}, {info['threads']} threads, torch {info['torch']}, "
        f"transformers {info['transformers']}, {info['date']}; load average {info['load_average_start']} -> "
        f"{info['load_average_end']}"
    )
    print("ratio > 1 = ours better (rates: ours/peer; ms and MiB: peer/ours), from the medians; paired = median of")
    print("the ratios of adjacent ours/peer runs; cpu = the same from process CPU time")
    header = f"{'measure':<46} {'ours':>9} {'peer':>9} {'unit':<8} {'ratio':>6} {'paired':>6} {'cpu':>6}  target"
    print(header)
    print("-" * len(header))
    for r in RECORDS:
        target = "" if r.target is None else f">={r.target:g}x {'met' if r.met else 'MISSED'}"
        paired = "" if r.paired_ratio is None else f"{r.paired_ratio:.3f}"
        cpu = "" if r.cpu_ratio is None else f"{r.cpu_ratio:.3f}"
        print(f"{r.name:<46} {r.ours:>9.4g} {r.peer:>9.4g} {r.unit:<8} {r.ratio:>6.3f} {paired:>6} {cpu:>6}  {target}")


def markdown_table() -> str:
    lines = [
        "| measure | ours | peer | unit | ratio | paired | cpu | target |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in RECORDS:
        target = "" if r.target is None else f"≥{r.target:g}x {'met' if r.met else '**missed**'}"
        paired = "" if r.paired_ratio is None else f"{r.paired_ratio:.2f}"
        cpu = "" if r.cpu_ratio is None else f"{r.cpu_ratio:.2f}"
        lines.append(
            f"| `{r.name}` | {r.ours:.4g} | {r.peer:.4g} | {r.unit} | {r.ratio:.2f} | {paired} | {cpu} | {target} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions (a few minutes)")
    parser.add_argument("--json", type=str, default=None, help="write the records (and machine info) to this file")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--only", type=str, default=None, help=f"comma-separated subset of {','.join(GROUPS)}")
    parser.add_argument("--sizes", type=lambda v: v.split(","), default=None, help="model sizes, e.g. tiny,small")
    parser.add_argument("--pretrain-reps", dest="pretrain_reps", type=int, default=None)
    parser.add_argument("--throughput-reps", dest="throughput_reps", type=int, default=None)
    parser.add_argument("--latency-reps", dest="latency_reps", type=int, default=None)
    parser.add_argument("--markdown", type=str, default=None, help="also write the table as markdown to this file")
    parser.add_argument("--rss-child", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_child:
        rss_child(args.rss_child)
        return

    torch.set_num_threads(args.threads)
    # As the training scripts do: denormal Adam moments are ~100x slower on x86 (same setting for both sides).
    torch.set_flush_denormal(True)
    settings(args)
    groups = GROUPS if args.only is None else tuple(g.strip() for g in args.only.split(","))
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; choose from {GROUPS}")
    info = machine_info(args)
    log(
        f"{info['cpu']} ({info['cpu_capability']}, avx512_bf16={info['avx512_bf16']}, amx={info['amx_bf16']}), "
        f"{args.threads} threads, torch {torch.__version__}, transformers {transformers.__version__}"
    )
    start = time.perf_counter()
    measures = {
        "peak": measure_peak,
        "frontend": measure_frontend,
        "pretrain": measure_pretraining,
        "rss": measure_rss,
        "inference": measure_inference,
        "pipeline": measure_pipeline,
        "bf16": measure_bf16,
    }
    for group, fn in measures.items():
        if group in groups:
            fn(args)
    remeasure_peak()
    flop_efficiency_records()
    info["load_average_end"] = os.getloadavg()
    info["wall_seconds"] = round(time.perf_counter() - start, 1)
    print_table(info)
    print(f"\nwall time {info['wall_seconds']:.0f} s")
    if args.markdown:
        Path(args.markdown).write_text(markdown_table() + "\n")
        print(f"wrote {args.markdown}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "records": [dataclasses.asdict(r) for r in RECORDS]}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
