"""`maskspec-classify`: top-k labels of audio files or a dataset split (`maskspec_hf.evaluation.classify.classify`).

Exit status 2 (with the first error) only when not a single clip could be classified; a run that classified some
clips and skipped others succeeds, its skipped clips listed in the output file.
"""

import sys

from ..data.arguments import DataArguments
from ..evaluation.classify import ClassifyArguments, classify
from ..loading import ModelArguments
from . import parse_command_line, run_console_script


def parse_args(argv=None) -> tuple[ModelArguments, DataArguments, ClassifyArguments]:
    """The command line (a recipe JSON/YAML file may come first) as `classify`'s three arguments."""
    return parse_command_line((ModelArguments, DataArguments, ClassifyArguments), argv)


def _run(argv) -> None:
    model_args, data_args, classify_args = parse_args(argv)
    results = classify(model_args, data_args, classify_args)
    failed = [r for r in results if "error" in r]
    if results and len(failed) == len(results):
        raise ValueError(
            f"None of the {len(results)} clips could be classified (e.g. {failed[0]['id']}: {failed[0]['error']}); "
            f"the errors are in {classify_args.output_file}."
        )


def main(argv=None) -> int:
    return run_console_script(_run, argv, prog="maskspec-classify")


if __name__ == "__main__":
    sys.exit(main())
