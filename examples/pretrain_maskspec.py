#!/usr/bin/env python
# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Pre-train MaskSpec on an audio dataset (AudioSet from the Hub, a local folder, or the built-in synthetic data).

The training loop lives in `maskspec_hf.training.pretraining`; this file only calls it, so it runs the same way under

    python examples/pretrain_maskspec.py --output_dir runs/maskspec-tiny --model_size tiny
    accelerate launch examples/pretrain_maskspec.py --dataset_name agkphysics/AudioSet --dataset_config_name balanced \
        --model_size base --output_dir runs/maskspec-base --mixed_precision bf16
    torchrun --nproc_per_node 2 examples/pretrain_maskspec.py --dataset_name agkphysics/AudioSet \
        --dataset_config_name unbalanced --streaming --max_steps 100000 --output_dir runs/maskspec-base-as2m

(the `maskspec-pretrain` console script is the same). `--help` lists every option. On a machine without GPUs, several
processes train on CPU (gloo) with `torchrun --nproc_per_node N` or `accelerate launch --multi_gpu --num_processes N`
(`accelerate launch --cpu` starts a single process). A job that may be interrupted can always pass
`--resume_from_checkpoint latest`: it starts afresh when there is no checkpoint yet.
"""

import sys

from maskspec_hf.training.pretraining import cli


if __name__ == "__main__":
    sys.exit(cli())
