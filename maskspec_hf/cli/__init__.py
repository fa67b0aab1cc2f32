"""The command line: one module per console script, each parsing dataclasses with `HfArgumentParser`.

Exit codes: 0 on success, 2 with a one-line message on a user error.

The work is done by plain functions (that examples and benchmarks call too) that return results; the installed
wrappers call `sys.exit(main())`, and `sys.exit(<dict>)` would be exit status 1, so they must never see those results.
"""

import os
import sys
from collections.abc import Callable, Sequence


# Errors a user can fix (bad arguments, missing or unreadable files); anything else keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


def run_console_script(main: Callable, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    prog = prog or os.path.basename(sys.argv[0])
    try:
        main(list(sys.argv[1:] if argv is None else argv))
    except USER_ERRORS as err:
        if os.environ.get("MASKSPEC_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def parse_command_line(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """Parse `argv` into one instance of each dataclass with `HfArgumentParser`.

    A first argument ending in .json, .yaml or .yml is a recipe file: its values are the defaults, and the options
    after it on the command line override them (`maskspec-pretrain recipe.json --data_dir X --output_dir Y`). Unknown
    keys in the file and unknown options are errors naming them.
    """
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    if argv and argv[0].lower().endswith((".json", ".yaml", ".yml")):
        argv = _recipe_as_arguments(parser, argv[0]) + argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def _recipe_as_arguments(parser, path: str) -> list[str]:
    import json

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe file {path} does not exist.")
    with open(path, encoding="utf-8") as handle:
        if path.lower().endswith(".json"):
            values = json.load(handle)
        else:
            import yaml

            values = yaml.safe_load(handle)
    if not isinstance(values, dict):
        raise ValueError(f"Recipe file {path} must hold one object of option names and values.")
    # Keys starting with "_" are notes for the reader (JSON has no comments).
    values = {name: value for name, value in values.items() if not name.startswith("_")}
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Recipe file {path}: unknown options {', '.join(unknown)}.")
    arguments = []
    for name, value in values.items():
        if isinstance(value, bool):
            arguments += [f"--{name}", str(value)]
        elif isinstance(value, list):
            arguments += [f"--{name}", *map(str, value)]
        elif isinstance(value, dict):
            arguments += [f"--{name}", json.dumps(value)]
        elif value is not None:
            arguments += [f"--{name}", str(value)]
    return arguments
