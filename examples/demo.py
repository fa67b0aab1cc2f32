#!/usr/bin/env python
# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""`make demo`: pre-train MaskSpec-Tiny on the built-in synthetic corpus, then compare linear probes.

1. Generates the built-in corpus (`maskspec_hf.data.synthetic`, a real `datasets.Dataset`): 8 two-vowel words
   said by random speakers; the two words of each vowel pair (a-i, i-a) share their average spectrum and differ only
   in the order of the vowels.
2. Pre-trains MaskSpec-Tiny (12 blocks, width 192) on unlabelled clips with `maskspec_hf.training.pretraining`, the
   same code path as AudioSet, with the decoder of `examples/recipes/tiny-cpu.json` (CrossMAE-style, 2x256, a
   quarter of the masked patches reconstructed per step) so that enough steps fit in a few CPU minutes.
3. Fits the same linear probe (frozen encoder, `maskspec_hf.evaluation.probe`'s logistic regression) on the
   pre-trained encoder and on the same encoder at random init, with two readouts (mean pooling and MSM-MAE's
   freq-concat mean+max), beside a spectrogram baseline without an encoder, and prints what it measured.
4. Leaves the reconstruction figure and the Hub-ready folder (config with auto_map, model.safetensors,
   preprocessor_config.json, README.md model card) in the output directory.

    python examples/demo.py --output_dir outputs/demo
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


RECIPE = Path(__file__).resolve().parent / "recipes" / "tiny-cpu.json"
RECIPE_OPTIONS = json.loads(RECIPE.read_text())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--clip_seconds", type=float, default=2.0, help="Length of every clip.")
    parser.add_argument("--num_pretrain_clips", type=int, default=2048, help="Unlabelled clips for pre-training.")
    parser.add_argument(
        "--pretrain_steps", type=int, default=1200, help="At most this many steps (see --max_minutes)."
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=1.5e-3,
        help="Peak learning rate, used as is (the recipe's): the paper's rule (base LR x batch / 256) would give a "
        "small batch an LR too small to move the encoder in a few hundred steps.",
    )
    parser.add_argument(
        "--max_minutes",
        type=float,
        default=10.0,
        help="Time budget of the whole demo: on a slow or busy machine the pre-training schedule is fitted to what "
        "is left (fewer steps, still fully annealed) so that the demo finishes in time.",
    )
    parser.add_argument(
        "--probe_reserve_minutes",
        type=float,
        default=1.5,
        help="Part of --max_minutes kept for the probes and the final folder.",
    )
    parser.add_argument(
        "--config_overrides",
        default=None,
        help=f"Model config overrides (default: those of {RECIPE.name}, its lighter decoder).",
    )
    parser.add_argument("--num_probe_train", type=int, default=600, help="Labelled clips to train the probe on.")
    parser.add_argument("--num_probe_test", type=int, default=400, help="Held-out labelled clips to score it on.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the corpus, the pre-training and the init.")
    parser.add_argument(
        "--dataloader_num_workers",
        type=int,
        default=RECIPE_OPTIONS["dataloader_num_workers"],
        help=f"DataLoader worker processes (default: {RECIPE.name}'s; on 2 cores a worker slows the step down).",
    )
    parser.add_argument(
        "--mixed_precision",
        default="auto",
        choices=("auto", "bf16", "no"),
        help="auto: bf16 autocast where the CPU has bf16 units (AVX512-BF16/AMX), else fp32.",
    )
    return parser.parse_args(argv)


def config_overrides(args) -> str:
    if args.config_overrides is not None:
        return args.config_overrides
    return RECIPE_OPTIONS["config_overrides"]


def run_pretraining(args, output_dir: Path, steps: int, minutes: float) -> dict:
    """`maskspec_hf.training.pretraining.pretrain` on the built-in corpus; returns its summary."""
    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training.pretraining import PretrainingArguments, pretrain

    model_args = ModelArguments(  # the recipe's decoder and attention kernel (eager: faster in bf16)
        model_name_or_path="tiny",
        config_overrides=config_overrides(args),
        attn_implementation=RECIPE_OPTIONS.get("attn_implementation"),
    )
    data_args = DataArguments(
        synthetic_num_clips=args.num_pretrain_clips, synthetic_seed=args.seed, max_length_seconds=args.clip_seconds
    )
    training_args = PretrainingArguments(
        output_dir=str(output_dir),
        overwrite_output_dir=True,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        scale_lr=False,
        max_steps=steps,
        max_train_minutes=round(minutes, 2),
        fit_schedule_to_time_limit=True,
        warmup_ratio=0.1,
        mixed_precision=args.mixed_precision,
        checkpointing_steps=max(1, steps // 2),
        checkpoints_total_limit=1,
        image_steps=max(1, steps // 2),
        logging_steps=10,
        dataloader_num_workers=args.dataloader_num_workers,
        seed=args.seed,
    )
    return pretrain(model_args, data_args, training_args)


READOUTS = {"mean": "mean-pooled", "freq-concat": "freq-concat mean+max"}


def embed(encoder, dataset, feature_extractor, clip_seconds: float, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Frozen encoder embeddings of every clip (all patches, no masking) in the two readouts of
    `maskspec_hf.evaluation.probe.pool_patch_outputs`: `mean`, the classifier's pooling (`pooler_output`), and
    `freq-concat`, MSM-MAE's (the frequency patches of each 160 ms step concatenated, then mean and max over time);
    plus `log-mel`, the encoder's input `[clips, frames, mel]`, for the baseline."""
    from maskspec_hf.data import ClipProcessor, SpectrogramCollator, num_frames_for_seconds, prepare_audio_dataset
    from maskspec_hf.evaluation.probe import pool_patch_outputs

    dataset, id_column = prepare_audio_dataset(dataset)
    num_samples, num_frames = num_frames_for_seconds(feature_extractor, clip_seconds)
    processor = ClipProcessor(
        feature_extractor.sampling_rate,
        num_samples,
        feature_extractor.min_num_samples,
        id_column=id_column,
        random_crop=False,
    )
    collator = SpectrogramCollator(feature_extractor, num_frames)
    outputs = {name: [] for name in (*READOUTS, "log-mel")}
    encoder.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            clips = [processor(dataset[i], (0, i)) for i in range(start, min(start + batch_size, len(dataset)))]
            batch = collator(clips)
            if batch["skipped"]:
                raise RuntimeError(f"Unusable clips in the demo data: {batch['skipped']}")
            out = encoder(input_values=batch["input_values"], attention_mask=batch["attention_mask"])
            for readout in READOUTS:
                outputs[readout].append(pool_patch_outputs(out, encoder.config.num_freq_patches, readout).numpy())
            outputs["log-mel"].append(batch["input_values"].numpy())
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def spectrogram_baseline(log_mel: np.ndarray) -> np.ndarray:
    """A classifier's input without any encoder: each mel bin's mean and std over time (what the average spectrum
    and its spread show: which vowels a word has, not their order)."""
    return np.concatenate([log_mel.mean(1), log_mel.std(1)], axis=1)


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int) -> dict:
    """The package's linear probe (standardized embeddings, logistic regression): accuracy, and mAP of one-vs-rest
    classifiers."""
    from maskspec_hf.evaluation.probe import fit_linear_probe

    options = dict(C=0.5, max_iter=3000)
    one_hot = np.eye(num_classes, dtype=np.int64)
    return {
        "accuracy": float(
            fit_linear_probe(train_x, train_y, test_x, test_y, multi_label=False, **options)["accuracy"]
        ),
        "mAP": float(
            fit_linear_probe(train_x, one_hot[train_y], test_x, one_hot[test_y], multi_label=True, **options)["mAP"]
        ),
    }


def score_all(encoders: dict, splits, feature_extractor, clip_seconds: float, num_classes: int) -> dict:
    """`{row name: {readout: {"accuracy", "mAP"}}}` for every encoder, then the spectrogram baseline (its score does
    not depend on the readout, so both columns hold the same one)."""
    train_y, test_y = np.asarray(splits["train"]["label"]), np.asarray(splits["test"]["label"])
    scores = {}
    for name, encoder in encoders.items():
        train_x = embed(encoder, splits["train"], feature_extractor, clip_seconds)
        test_x = embed(encoder, splits["test"], feature_extractor, clip_seconds)
        scores[name] = {
            readout: linear_probe(train_x[readout], train_y, test_x[readout], test_y, num_classes)
            for readout in READOUTS
        }
        print(
            f"  {name}: "
            + "; ".join(
                f"{READOUTS[r]}: accuracy {v['accuracy']:.3f}, mAP {v['mAP']:.3f}" for r, v in scores[name].items()
            ),
            flush=True,
        )
    label = "no encoder: log-mel mean+std per mel bin"
    result = linear_probe(
        spectrogram_baseline(train_x["log-mel"]), train_y, spectrogram_baseline(test_x["log-mel"]), test_y, num_classes
    )
    scores[label] = {readout: result for readout in READOUTS}
    print(f"  {label}: accuracy {result['accuracy']:.3f}, mAP {result['mAP']:.3f}", flush=True)
    return scores


def results_table(args, scores: dict, num_classes: int, chance: float) -> list[str]:
    return [
        f"Linear probe on frozen embeddings: {num_classes} synthetic two-vowel words said by random speakers (each "
        "vowel pair in both orders), "
        f"{args.num_probe_train} training / {args.num_probe_test} test clips of {args.clip_seconds:g} s. Accuracy, "
        "and mAP of one-vs-rest probes; the row without an encoder does not depend on the readout.",
        "",
        "| features | " + " | ".join(f"accuracy, {READOUTS[r]} | mAP, {READOUTS[r]}" for r in READOUTS) + " |",
        "|---|" + "---|---|" * len(READOUTS),
        *[
            f"| {name} | " + " | ".join(f"{s[r]['accuracy']:.3f} | {s[r]['mAP']:.3f}" for r in READOUTS) + " |"
            for name, s in scores.items()
        ],
        "| (majority class) | " + " | ".join(f"{chance:.3f} | -" for _ in READOUTS) + " |",
    ]


def verdict(scores: dict, pretrained: str, random_init: str, num_test: int) -> str:
    """Pre-trained against random init per readout, on accuracy: a win or a loss only beyond two standard errors of
    the difference of two accuracies on `num_test` clips, else a tie within noise."""
    parts = []
    for readout, label in READOUTS.items():
        a, b = scores[pretrained][readout]["accuracy"], scores[random_init][readout]["accuracy"]
        margin = 2 * np.sqrt((a * (1 - a) + b * (1 - b)) / num_test)
        outcome = (
            "pre-trained wins" if a - b > margin else "random init wins" if b - a > margin else "tie within noise"
        )
        parts.append(f"{label}: {a - b:+.3f} ({outcome}; noise +-{margin:.3f})")
    return "Pre-trained minus random init, accuracy (noise: 2 standard errors): " + "; ".join(parts) + "."


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    from accelerate.utils import set_seed

    from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForPreTraining
    from maskspec_hf.data.synthetic import SOUND_EVENT_TYPES, make_sound_events_dataset, make_sound_events_splits

    print(
        f"== 0/3 Generating the built-in synthetic corpus (seed {args.seed}): {args.num_pretrain_clips} unlabelled "
        f"clips for pre-training, {args.num_probe_train} + {args.num_probe_test} labelled clips for the probes ==",
        flush=True,
    )
    make_sound_events_dataset(args.num_pretrain_clips, seed=args.seed, clip_seconds=args.clip_seconds)
    splits = make_sound_events_splits(
        args.num_probe_train, args.num_probe_test, seed=args.seed, clip_seconds=args.clip_seconds
    )
    # Keep the whole demo within --max_minutes: pre-training gets what is left after the data and a reserve for the
    # probes, and its schedule is fitted to that (a slow or busy machine runs fewer, fully annealed steps).
    minutes = max(1.0, args.max_minutes - (time.perf_counter() - started) / 60 - args.probe_reserve_minutes)
    print(
        f"\n== 1/3 Pre-training MaskSpec-Tiny on {args.num_pretrain_clips} clips of {args.clip_seconds:g} s: at most "
        f"{args.pretrain_steps} steps of {args.batch_size} clips and {minutes:.1f} min (decoder of {RECIPE.name}) ==",
        flush=True,
    )
    pretrain_started = time.perf_counter()
    summary = run_pretraining(args, output_dir / "pretraining", args.pretrain_steps, minutes)
    pretrain_seconds = time.perf_counter() - pretrain_started
    final = Path(summary["final_dir"])

    print(
        f"\n== 2/3 Linear probes: {args.num_probe_train} labelled training clips, {args.num_probe_test} held-out "
        "test clips ==",
        flush=True,
    )
    feature_extractor = MaskSpecFeatureExtractor.from_pretrained(final)
    # The random-init encoder is the pre-training's own starting point (same seed, same code path), so the two rows
    # differ only by the pre-training.
    set_seed(args.seed)
    random_init = MaskSpecForPreTraining(MaskSpecConfig.from_pretrained(final)).maskspec
    pretrained_name = f"MaskSpec-Tiny pre-trained ({summary['step']} steps)"
    encoders = {
        pretrained_name: MaskSpecForPreTraining.from_pretrained(final).maskspec,
        "MaskSpec-Tiny random init": random_init,
    }
    num_classes = len(SOUND_EVENT_TYPES)
    scores = score_all(encoders, splits, feature_extractor, args.clip_seconds, num_classes)
    train_y, test_y = np.asarray(splits["train"]["label"]), np.asarray(splits["test"]["label"])
    chance = float(np.mean(test_y == np.bincount(train_y).argmax()))

    total_seconds = time.perf_counter() - started
    table = results_table(args, scores, num_classes, chance)
    outcome = verdict(scores, pretrained_name, "MaskSpec-Tiny random init", len(test_y))
    results = {
        "scores": scores,
        "verdict": outcome,
        "majority_class_accuracy": chance,
        "pretraining": {k: summary[k] for k in ("step", "total_steps", "final_loss", "clips_seen", "learning_rate")},
        "mixed_precision": summary["mixed_precision"],
        "pretraining_seconds": round(pretrain_seconds, 1),
        "stopped_by_time_limit": summary["stopped_by_time_limit"],
        "total_seconds": round(total_seconds, 1),
        "args": vars(args),
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=1))
    (output_dir / "results.md").write_text("\n".join(table) + "\n")

    print("\n== 3/3 Results ==\n")
    print("\n".join(table))
    print(
        f"\n{outcome}\nPre-training: {summary['step']} steps of {args.batch_size} clips ({summary['clips_seen']} "
        f"clips, precision {summary['mixed_precision']}), final loss {summary['final_loss']:.4f}, "
        f"{pretrain_seconds / 60:.1f} min; whole demo {total_seconds / 60:.1f} min."
    )
    print("\nWhere things are:")
    print(f"  reconstruction figure (input | masked input | reconstruction): {summary.get('figure')}")
    print(f"  figures during training:      {output_dir / 'pretraining' / 'images'}")
    print(
        f"  Hub-ready model folder:       {final}  (README.md model card, config.json with auto_map, "
        "model.safetensors, preprocessor_config.json)"
    )
    print(f"  per-step loss log:            {output_dir / 'pretraining' / 'logs' / 'train_log.jsonl'}")
    print(f"  TensorBoard:                  tensorboard --logdir {output_dir / 'pretraining' / 'runs'}")
    print(f"  these results:                {output_dir / 'results.md'}")
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
