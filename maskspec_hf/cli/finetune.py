"""`maskspec-finetune`: fine-tune a MaskSpec classifier with `transformers.Trainer`
(`maskspec_hf.training.finetuning.finetune`)."""

import sys

from transformers import TrainingArguments

from ..data.arguments import DataArguments
from ..loading import ModelArguments
from ..training.finetuning import FinetuningArguments, finetune
from . import parse_command_line, run_console_script


def parse_args(argv=None) -> tuple[ModelArguments, DataArguments, FinetuningArguments, TrainingArguments]:
    """The command line (a recipe JSON/YAML file may come first) as `finetune`'s four arguments."""
    return parse_command_line((ModelArguments, DataArguments, FinetuningArguments, TrainingArguments), argv)


def main(argv=None) -> int:
    return run_console_script(lambda args: finetune(*parse_args(args)), argv, prog="maskspec-finetune")


if __name__ == "__main__":
    sys.exit(main())
