"""Exit codes for the console scripts: 0 on success, 2 with a one-line message on a user error.

The `main()` functions return their results for Python callers; the installed wrappers call `sys.exit(cli())`, and
`sys.exit(<dict>)` would be exit status 1, so the wrappers must never see those results.
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
