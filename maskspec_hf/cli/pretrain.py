"""`maskspec-pretrain`: `ModelArguments`, `DataArguments` and `PretrainingArguments` from the command line (or a
recipe file given first), then `maskspec_hf.training.pretraining.pretrain`."""

import sys

from . import parse_command_line, run_console_script


def parse_arguments(argv=None) -> tuple:
    """`(model_args, data_args, training_args)` of a `maskspec-pretrain` command line."""
    from ..data.arguments import DataArguments
    from ..loading import ModelArguments
    from ..training.pretraining import PretrainingArguments

    return parse_command_line([ModelArguments, DataArguments, PretrainingArguments], argv)


def main(argv=None) -> int:
    from ..training.pretraining import pretrain

    return run_console_script(lambda a: pretrain(*parse_arguments(a)), argv, prog="maskspec-pretrain")


if __name__ == "__main__":
    sys.exit(main())
