"""`maskspec-pretrain`."""

import sys

from ..training.pretraining import main as run
from . import run_console_script


def main(argv=None) -> int:
    return run_console_script(run, argv, prog="maskspec-pretrain")


if __name__ == "__main__":
    sys.exit(main())
