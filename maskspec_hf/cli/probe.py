"""`maskspec-probe`: a linear probe of a frozen MaskSpec encoder (`maskspec_hf.evaluation.probe.probe`)."""

import sys

from ..data.arguments import DataArguments
from ..evaluation.probe import ProbeArguments, probe
from ..loading import ModelArguments
from . import parse_command_line, run_console_script


def parse_args(argv=None) -> tuple[ModelArguments, DataArguments, ProbeArguments]:
    """The command line (a recipe JSON/YAML file may come first) as `probe`'s three arguments."""
    return parse_command_line((ModelArguments, DataArguments, ProbeArguments), argv)


def main(argv=None) -> int:
    return run_console_script(lambda args: probe(*parse_args(args)), argv, prog="maskspec-probe")


if __name__ == "__main__":
    sys.exit(main())
