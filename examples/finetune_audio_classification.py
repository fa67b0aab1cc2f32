#!/usr/bin/env python
# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune MaskSpec for audio classification with `transformers.Trainer` (also installed as `maskspec-finetune`).

Arguments follow transformers' `examples/pytorch/audio-classification/run_audio_classification.py` where they overlap
(--model_name_or_path, --dataset_name, --dataset_config_name, --data_dir, --audio_column_name, --label_column_name,
--train_split_name, --eval_split_name, --max_length_seconds, plus all TrainingArguments); MaskSpec's recipe adds
--mixup_alpha, --freq_mask_bins, --time_mask_frames, --patchout_ratio, --layer_decay, --label_smoothing,
--balanced_sampling, --random_crop / --no_random_crop and --no_augment. See `maskspec_hf/training/finetuning.py`.

Single-label (folder-per-class audiofolder, or a ClassLabel column such as ESC-50's):

    python examples/finetune_audio_classification.py --model_name_or_path path/to/pretrained-maskspec \
        --data_dir my_audiofolder --eval_split_name test --output_dir outputs/esc50 \
        --do_train --do_eval --num_train_epochs 30 --learning_rate 1e-4 --per_device_train_batch_size 32 \
        --eval_strategy epoch --save_strategy epoch --weight_decay 0.05 --warmup_steps 0.05

Multi-label AudioSet (a `labels` column of MIDs, multi-hot over the 527-class index):

    python examples/finetune_audio_classification.py --model_name_or_path path/to/pretrained-maskspec \
        --dataset_name agkphysics/AudioSet --dataset_config_name balanced --label_column_name labels \
        --eval_split_name test --class_index_csv class_labels_indices.csv --output_dir outputs/as20k --do_train \
        --do_eval

From scratch: `--model_name_or_path tiny` (or small, base). On CPU, `--bf16` needs `--use_cpu`.
"""

import sys

from maskspec_hf.cli import run_console_script
from maskspec_hf.cli.finetune import parse_args
from maskspec_hf.training.finetuning import finetune


def main(argv=None) -> dict:
    """The metrics of the run (see `finetune`); a recipe JSON/YAML file may come first on the command line."""
    return finetune(*parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_console_script(main))  # exit status 0, or 2 with a one-line message on a user error
