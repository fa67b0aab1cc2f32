"""`maskspec-probe`."""

import sys

from ..evaluation.probe import main as run
from . import run_console_script


def main(argv=None) -> int:
    return run_console_script(run, argv, prog="maskspec-probe")


if __name__ == "__main__":
    sys.exit(main())
