#!/usr/bin/env python
# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Pre-train MaskSpec on an audio dataset (AudioSet from the Hub, a local folder, or the built-in synthetic data).

The training loop lives in `maskspec_hf.training.pretraining`; this file is the `maskspec-pretrain` command, so it
runs the same way under

    python examples/pretrain_maskspec.py --output_dir runs/maskspec-tiny --model_name_or_path tiny
    accelerate launch examples/pretrain_maskspec.py --dataset_name agkphysics/AudioSet --dataset_config_name balanced \
        --model_name_or_path base --output_dir runs/maskspec-base --mixed_precision bf16
    torchrun --nproc_per_node 2 examples/pretrain_maskspec.py --dataset_name agkphysics/AudioSet \
        --dataset_config_name unbalanced --streaming --max_steps 100000 --output_dir runs/maskspec-base-as2m
    python examples/pretrain_maskspec.py recipe.json --data_dir my_audio --output_dir runs/mine

(`--help` lists every option; a JSON/YAML recipe file given first holds defaults that later options override). On a
machine without GPUs, several processes train on CPU (gloo) with `torchrun --nproc_per_node N` or `accelerate launch
--multi_gpu --num_processes N` (`accelerate launch --cpu` starts a single process). A job that may be interrupted can
always pass `--resume_from_checkpoint latest`: it starts afresh when there is no checkpoint yet.

From Python, build the three argument objects and call `pretrain` directly:

    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training.pretraining import PretrainingArguments, pretrain

    summary = pretrain(ModelArguments(model_name_or_path="tiny"), DataArguments(max_length_seconds=2.0),
                       PretrainingArguments(output_dir="runs/tiny", max_steps=100))
"""

import sys

from maskspec_hf.cli.pretrain import main


if __name__ == "__main__":
    sys.exit(main())
