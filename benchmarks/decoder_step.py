# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Pre-training step time of the decoder / masking / precision variants against `ViTMAEForPreTraining`.

    python benchmarks/decoder_step.py [--reps 4] [--warmup 2] [--threads 2] [--json out.json] [--no-bf16] [--compile]
                                      [--batch 8 --frames 1000]  (--batch 64 --frames 208: tiny-cpu.json's shapes)

One pre-training step = forward + backward + AdamW step (the package's, fused on CPU), batch 8, mask ratio 0.75, the
MaskSpec-Tiny encoder (192 wide, 3 heads, FFN 768, 12 blocks) on both sides. Ours gets a 1000 x 128 log-mel input (62
x 8 = 496 patches, the trailing 8 frames cropped); ViTMAE the same 496 patches as a 128 x 992 one-channel image (its
`patchify` needs whole patches) with the paper's decoder (512 wide, 8 blocks, 16 heads, FFN 2048), built by
`benchmarks/run.py`'s `vitmae_config("tiny")`. Every variant runs in this process, alternately (A B C ..., then ... C
B A), after warm-up, with 2 threads and denormals flushed; the table shows median clips/s and the speed-up over
ViTMAE in fp32 (ratio of the medians, `paired` = median of the per-round ratios, `cpu` = from process CPU time,
`best` = from the fastest run of each, the least disturbed by other processes). bf16 rows use `torch.autocast("cpu",
dtype=torch.bfloat16)` with fp32 master weights and AdamW, and run only on CPUs with AVX512-BF16 or AMX (elsewhere
one bf16 step at batch 8 takes minutes). The recipe's rows use its attention kernel (eager); its `SDPA attention` rows
the model default.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (sets the thread count from --threads before torch is imported)
import torch  # noqa: E402
from transformers import ViTMAEForPreTraining  # noqa: E402

from maskspec_hf import MaskSpecConfig, MaskSpecForPreTraining  # noqa: E402


HERE = Path(__file__).resolve().parent
BATCH = 8  # the shapes: 10 s clips; --batch 64 --frames 208 gives tiny-cpu.json's (2.08 s crops)
FRAMES = 1000
MEL = 128
SMALL_DECODER = dict(
    decoder_hidden_size=256, decoder_num_hidden_layers=2, decoder_num_attention_heads=8, decoder_intermediate_size=1024
)
# The recommended CPU pre-training recipe: CrossMAE decoder, 2 x 256, a quarter of the masked patches reconstructed.
RECIPE = dict(decoder_type="cross_attention", decoder_reconstruct_ratio=0.25, **SMALL_DECODER)

# name -> (MaskSpecConfig overrides, group). Group "paper": decoder at the paper's dimensions (512/8/16/2048);
# "small": the 2 x 256 decoder (a different, smaller model: reported separately).
VARIANTS = {
    "paper (self-attention, all masked)": ({}, "paper"),
    "reconstruct 0.5": ({"decoder_reconstruct_ratio": 0.5}, "paper"),
    "reconstruct 0.25": ({"decoder_reconstruct_ratio": 0.25}, "paper"),
    "cross-attention, reconstruct 1": ({"decoder_type": "cross_attention"}, "paper"),
    "cross-attention, reconstruct 0.25": (
        {"decoder_type": "cross_attention", "decoder_reconstruct_ratio": 0.25},
        "paper",
    ),
    "inverse_block mask, cross-attention 0.25": (
        {"decoder_type": "cross_attention", "decoder_reconstruct_ratio": 0.25, "mask_strategy": "inverse_block"},
        "paper",
    ),
    "2x256 self-attention, all masked": (SMALL_DECODER, "small"),
    "recipe: 2x256 cross-attention, reconstruct 0.25": (RECIPE, "small"),
}
BF16_VARIANTS = (
    "paper (self-attention, all masked)",
    "reconstruct 0.25",
    "cross-attention, reconstruct 0.25",
    "2x256 self-attention, all masked",
    "recipe: 2x256 cross-attention, reconstruct 0.25",
)
PAPER_TARGET = 3.0  # an efficient decoder at the paper's dimensions: >= 3x ViTMAE's fp32 step
RECIPE_TARGETS = {"fp32": 8.0, "bf16": 16.0}  # the recommended CPU recipe vs ViTMAE fp32
RECIPE_NAME = "recipe: 2x256 cross-attention, reconstruct 0.25"
# tiny-cpu.json's attention kernel (eager); the recipe's "SDPA attention" rows keep the model default.
RECIPE_ATTENTION = json.loads((HERE.parent / "examples" / "recipes" / "tiny-cpu.json").read_text())[
    "attn_implementation"
]


def new_model(config: MaskSpecConfig, attention: str | None) -> MaskSpecForPreTraining:
    """A model on its own copy of `config` (set_attn_implementation changes the config it is given)."""
    model = MaskSpecForPreTraining(copy.deepcopy(config))
    if attention:
        model.set_attn_implementation(attention)
    return model


def build(with_bf16: bool, with_compile: bool = False, batch: int = BATCH, frames: int = FRAMES) -> tuple[dict, dict]:
    torch.manual_seed(0)
    fns, info = {}, {}
    vitmae = ViTMAEForPreTraining(run.vitmae_config("tiny"))
    pixels = {"pixel_values": torch.randn(batch, 1, MEL, frames // 16 * 16), "interpolate_pos_encoding": True}
    fns["ViTMAE fp32"] = run.training_step(vitmae, pixels, bf16=False)
    info["ViTMAE fp32"] = {"params": sum(p.numel() for p in vitmae.parameters()), "group": "peer", "precision": "fp32"}
    inputs = {"input_values": torch.randn(batch, frames, MEL)}
    for precision in ("fp32", "bf16") if with_bf16 else ("fp32",):
        for name, (overrides, group) in VARIANTS.items():
            if precision == "bf16" and name not in BF16_VARIANTS:
                continue
            config = MaskSpecConfig.from_preset("tiny", mask_ratio=0.75, **overrides)
            key, bf16 = f"{name} {precision}", precision == "bf16"
            is_recipe = name == RECIPE_NAME
            model = new_model(config, RECIPE_ATTENTION if is_recipe else None)
            fns[key] = run.training_step(model, inputs, bf16=bf16)
            info[key] = {
                "params": sum(p.numel() for p in model.parameters()),
                "group": group,
                "precision": precision,
                "config": overrides,
            }
            if not is_recipe:
                continue
            # The recipe with one thing changed: the model's default attention kernel (SDPA), torch's looped AdamW.
            fns[f"{key}, SDPA attention"] = run.training_step(new_model(config, None), inputs, bf16=bf16)
            looped = new_model(config, RECIPE_ATTENTION)
            fns[f"{key}, looped AdamW"] = run.training_step(looped, inputs, bf16, fused_adamw=False)
            info[f"{key}, SDPA attention"] = info[f"{key}, looped AdamW"] = dict(info[key])
            if with_compile:  # what --torch_compile does: Module.compile(), in place
                compiled = new_model(config, RECIPE_ATTENTION)
                compiled.compile()
                fns[f"{key}, compiled"] = run.training_step(compiled, inputs, bf16=bf16)
                started = time.perf_counter()
                fns[f"{key}, compiled"]()  # the first call compiles: timed here, not in the table
                info[f"{key}, compiled"] = {**info[key], "compile_s": round(time.perf_counter() - started, 1)}
    return fns, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 rows even with bf16 units")
    parser.add_argument("--compile", action="store_true", help="add the recipe with torch.compile (--torch_compile)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    cpu, flags = run._cpu_info()
    with_bf16 = run._has_bf16_units() and not args.no_bf16
    start = time.time()
    load_start = os.getloadavg()
    run.log(
        f"{cpu}, {args.threads} threads, avx512_bf16={'avx512_bf16' in flags}, torch {torch.__version__}; "
        f"batch {args.batch}, {args.frames} x {MEL}, mask 0.75; bf16 rows: {with_bf16}"
    )
    fns, info = build(with_bf16, with_compile=args.compile, batch=args.batch, frames=args.frames)
    run.log(f"{len(fns)} variants, {args.warmup} warm-up + {args.reps} timed rounds, alternated")
    timings = run.alternate(fns, reps=args.reps, warmup=args.warmup)
    del fns
    gc.collect()

    peer = "ViTMAE fp32"
    peer_wall, peer_cpu = timings.wall[peer], run.median(timings.cpu[peer])
    rows = []
    for key, meta in info.items():
        wall = timings.wall[key]
        ratio = run.median(peer_wall) / run.median(wall)
        paired = run.median([p / o for p, o in zip(peer_wall, wall)])
        cpu_ratio = peer_cpu / run.median(timings.cpu[key])
        best = min(peer_wall) / min(wall)  # fastest runs: least disturbed by other processes
        target = None
        if (
            meta["group"] == "paper"
            and meta["precision"] == "fp32"
            and key != "paper (self-attention, all masked) fp32"
        ):
            target = PAPER_TARGET
        if key == f"{RECIPE_NAME} {meta['precision']}":  # not its compiled / looped-AdamW rows
            target = RECIPE_TARGETS[meta["precision"]]
        rows.append(
            {
                "variant": key,
                **meta,
                "step_s": run.median(wall),
                "clips_per_s": args.batch / run.median(wall),
                "ratio_vs_vitmae_fp32": ratio,
                "paired": paired,
                "cpu": cpu_ratio,
                "best": best,
                "target": target,
                "met": None if target is None else ratio >= target,
                "samples_s": [round(t, 4) for t in wall],
            }
        )
    load_end = os.getloadavg()
    print()
    print(
        f"Pre-training step, batch {args.batch}, {args.frames} frames, MaskSpec-Tiny encoder, mask 0.75; {cpu}, {args.threads} threads, "
        f"torch {torch.__version__}; load average {load_start} -> {load_end}; {(time.time() - start) / 60:.1f} min"
    )
    print("| variant | group | params (M) | step (s) | clips/s | × ViTMAE fp32 | paired | cpu | best | target |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        target = "" if r["target"] is None else f"≥{r['target']:g}x {'met' if r['met'] else '**missed**'}"
        print(
            f"| {r['variant']} | {r['group']} | {r['params'] / 1e6:.1f} | {r['step_s']:.3f} | {r['clips_per_s']:.2f} | "
            f"{r['ratio_vs_vitmae_fp32']:.2f} | {r['paired']:.2f} | {r['cpu']:.2f} | {r['best']:.2f} | {target} |"
        )
    if args.json:
        machine = {"cpu": cpu, "threads": args.threads, "avx512_bf16": "avx512_bf16" in flags}
        machine.update({"torch": torch.__version__, "load_average": [load_start, load_end]})
        machine["command"] = " ".join(["python"] + sys.argv)
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
