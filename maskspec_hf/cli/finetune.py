"""`maskspec-finetune`."""

import sys

from ..training.finetuning import main as run
from . import run_console_script


def main(argv=None) -> int:
    return run_console_script(run, argv, prog="maskspec-finetune")


if __name__ == "__main__":
    sys.exit(main())
