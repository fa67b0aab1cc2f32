#!/usr/bin/env python
# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""`make demo`: pre-train MaskSpec-Tiny on the built-in synthetic sound events, then compare classifiers.

1. Generates the built-in corpus (deterministic synthetic "sound events", a real `datasets.Dataset`).
2. Pre-trains MaskSpec-Tiny (12 blocks, width 192) on it with `maskspec_hf.training.pretraining`, the same code path as
   AudioSet (a lighter decoder than the paper's 8x512 one keeps this to a few minutes on 2 CPU cores).
3. Trains the same classifier twice for the labelled events: a linear probe (frozen encoder, two pooled readouts,
   `maskspec_hf.evaluation.probe`'s logistic regression) on the pre-trained encoder and on the same encoder at random init, and prints
   both scores.
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--clip_seconds", type=float, default=2.0, help="Length of every clip.")
    parser.add_argument("--num_pretrain_clips", type=int, default=2048, help="Unlabelled clips for pre-training.")
    parser.add_argument("--pretrain_steps", type=int, default=240, help="At most this many steps (see --max_minutes).")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=1.5e-3,
        help="Peak learning rate, used as is: the paper's rule (base LR x batch / 256) would give a batch of 16 an LR "
        "too small to move the encoder in a few hundred steps.",
    )
    parser.add_argument(
        "--max_minutes",
        type=float,
        default=13.0,
        help="Time budget of the whole demo: on a slow or busy machine pre-training stops early so that it finishes "
        "in time.",
    )
    parser.add_argument(
        "--probe_reserve_minutes",
        type=float,
        default=3.0,
        help="Part of --max_minutes kept for the probes and the final folder.",
    )
    parser.add_argument("--decoder", default="2x256", help="Decoder blocks x width (the paper's is 8x512).")
    parser.add_argument("--num_probe_train", type=int, default=600, help="Labelled clips to train the probe on.")
    parser.add_argument("--num_probe_test", type=int, default=400, help="Held-out labelled clips to score it on.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataloader_num_workers", type=int, default=1)
    return parser.parse_args(argv)


def decoder_overrides(args) -> str:
    blocks, width = (int(v) for v in args.decoder.lower().split("x"))
    return (
        f"decoder_num_hidden_layers={blocks},decoder_hidden_size={width},"
        f"decoder_num_attention_heads={max(1, width // 32)},decoder_intermediate_size={4 * width}"
    )


def tiny_config(args):
    from maskspec_hf import MaskSpecConfig

    config = MaskSpecConfig.from_preset("tiny")
    config.update_from_string(decoder_overrides(args))
    return config


def run_pretraining(args, output_dir: Path, steps: int, minutes: float) -> dict:
    """`maskspec_hf.training.pretraining.pretrain` on the built-in corpus; returns its summary."""
    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training.pretraining import PretrainingArguments, pretrain

    model_args = ModelArguments(model_name_or_path="tiny", config_overrides=decoder_overrides(args))
    data_args = DataArguments(synthetic_num_clips=args.num_pretrain_clips, max_length_seconds=args.clip_seconds)
    training_args = PretrainingArguments(
        output_dir=str(output_dir),
        overwrite_output_dir=True,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        scale_lr=False,
        max_steps=steps,
        max_train_minutes=round(minutes, 2),
        warmup_steps=max(1, steps // 10),
        checkpointing_steps=max(1, steps // 3),
        checkpoints_total_limit=1,
        image_steps=max(1, steps // 3),
        logging_steps=5,
        dataloader_num_workers=args.dataloader_num_workers,
        seed=args.seed,
    )
    return pretrain(model_args, data_args, training_args)


READOUTS = {
    "mean": "mean-pooled",
    "freq-concat": "freq-concat mean+max",
}


def embed(encoder, dataset, feature_extractor, clip_seconds: float, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Frozen encoder embeddings of every clip (all patches, no masking), in the two readouts of
    `benchmarks/ssl_gain.py`: `mean`, the classifier's pooling (`pooler_output`), and `freq-concat`, MSM-MAE's and
    `maskspec_hf.evaluation.hear`'s (the frequency patches of each 160 ms step concatenated, then mean and max over time)."""
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
    outputs = {name: [] for name in READOUTS}
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
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def linear_probe(train_x, train_y, train_multi, test_x, test_y, test_multi) -> dict:
    """The package's linear probe (standardized embeddings, logistic regression): accuracy on the dominant event,
    mAP on all events."""
    from maskspec_hf.evaluation.probe import fit_linear_probe

    options = dict(C=0.5, max_iter=3000)
    return {
        "accuracy": float(
            fit_linear_probe(train_x, train_y, test_x, test_y, multi_label=False, **options)["accuracy"]
        ),
        "mAP": float(fit_linear_probe(train_x, train_multi, test_x, test_multi, multi_label=True, **options)["mAP"]),
    }


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    from accelerate.utils import set_seed

    from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForPreTraining
    from maskspec_hf.data.synthetic import SOUND_EVENT_TYPES, make_sound_events_dataset, make_sound_events_splits

    print(
        f"== 0/3 Generating the built-in synthetic corpus: {args.num_pretrain_clips} unlabelled clips for "
        f"pre-training, {args.num_probe_train} + {args.num_probe_test} labelled clips for the probes ==",
        flush=True,
    )
    make_sound_events_dataset(args.num_pretrain_clips, seed=0, clip_seconds=args.clip_seconds)
    splits = make_sound_events_splits(
        args.num_probe_train, args.num_probe_test, seed=0, clip_seconds=args.clip_seconds
    )
    # Keep the whole demo within --max_minutes: pre-training gets what is left after the data and a reserve for the
    # probes; on a slow or busy machine it stops early (with a checkpoint and the final folder written as usual).
    minutes = max(1.0, args.max_minutes - (time.perf_counter() - started) / 60 - args.probe_reserve_minutes)
    steps = args.pretrain_steps

    print(
        f"\n== 1/3 Pre-training MaskSpec-Tiny on {args.num_pretrain_clips} built-in synthetic clips of "
        f"{args.clip_seconds:g} s: {steps} steps, at most {minutes:.1f} min (decoder {args.decoder}) ==",
        flush=True,
    )
    pretrain_started = time.perf_counter()
    summary = run_pretraining(args, output_dir / "pretraining", steps, minutes)
    pretrain_seconds = time.perf_counter() - pretrain_started
    final = Path(summary["final_dir"])

    print(
        f"\n== 2/3 Linear probes: {args.num_probe_train} labelled training clips, {args.num_probe_test} held-out "
        "test clips ==",
        flush=True,
    )
    classes = list(SOUND_EVENT_TYPES)

    def targets(split):
        multi = np.zeros((len(split), len(classes)), dtype=np.int64)
        for row, labels in enumerate(split["labels"]):
            multi[row, [classes.index(label) for label in labels]] = 1
        return np.asarray(split["label"]), multi

    train_y, train_multi = targets(splits["train"])
    test_y, test_multi = targets(splits["test"])
    feature_extractor = MaskSpecFeatureExtractor.from_pretrained(final)
    config = MaskSpecConfig.from_pretrained(final)
    # The random-init encoder is the pre-training's own starting point (same seed, same code path), so the two rows
    # differ only by the pre-training.
    set_seed(args.seed)
    random_init = MaskSpecForPreTraining(config).maskspec
    encoders = {
        # The encoder of the pre-trained checkpoint (its decoder is not needed here).
        f"MaskSpec-Tiny pre-trained ({summary['step']} steps)": MaskSpecForPreTraining.from_pretrained(final).maskspec,
        "MaskSpec-Tiny random init": random_init,
    }
    scores = {}
    for name, encoder in encoders.items():
        train_x = embed(encoder, splits["train"], feature_extractor, args.clip_seconds)
        test_x = embed(encoder, splits["test"], feature_extractor, args.clip_seconds)
        scores[name] = {
            readout: linear_probe(train_x[readout], train_y, train_multi, test_x[readout], test_y, test_multi)
            for readout in READOUTS
        }
        print(
            f"  {name}: "
            + "; ".join(
                f"{READOUTS[r]}: accuracy {v['accuracy']:.3f}, mAP {v['mAP']:.3f}" for r, v in scores[name].items()
            ),
            flush=True,
        )
    majority = float(np.mean(test_y == np.bincount(train_y).argmax()))

    total_seconds = time.perf_counter() - started
    table = [
        f"Linear probe on frozen encoder embeddings: {len(classes)} synthetic sound-event classes, "
        f"{args.num_probe_train} training / {args.num_probe_test} test clips of {args.clip_seconds:g} s. Accuracy: the "
        "dominant event; mAP: all events (multi-label).",
        "",
        "| encoder | " + " | ".join(f"accuracy, {READOUTS[r]} | mAP, {READOUTS[r]}" for r in READOUTS) + " |",
        "|---|" + "---|---|" * len(READOUTS),
        *[
            f"| {name} | " + " | ".join(f"{s[r]['accuracy']:.3f} | {s[r]['mAP']:.3f}" for r in READOUTS) + " |"
            for name, s in scores.items()
        ],
        "| (majority class) | " + " | ".join(f"{majority:.3f} | -" for _ in READOUTS) + " |",
    ]
    results = {
        "scores": scores,
        "majority_class_accuracy": majority,
        "pretraining": {k: summary[k] for k in ("step", "final_loss", "clips_seen", "learning_rate")},
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
        f"\nPre-training: {summary['step']} steps, {summary['clips_seen']} clips, final loss "
        f"{summary['final_loss']:.4f}, {pretrain_seconds / 60:.1f} min; whole demo {total_seconds / 60:.1f} min."
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
