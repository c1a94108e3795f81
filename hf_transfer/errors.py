"""One exception type for everything a user can fix; entry points print it as a single line and exit 2."""

from __future__ import annotations

import functools
import sys

from tqdm import tqdm

USER_ERROR_EXIT = 2  # what argparse uses for a usage error; launch_hook maps a child's 2 back to 2


class UserError(Exception):
    """A problem in the user's input or environment, with the fix in the message."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), trimmed to `limit`.

    Library errors often carry pages of context; a UserError quotes only this line.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__).rstrip(".")[:limit]


def exit_on_user_error(main):
    """Run `main`, turning a UserError into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            # tqdm.write clears a progress bar left mid-line (an error raised while training), so the error
            # starts a line of its own
            tqdm.write(f"hf-transfer: error: {err}", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(USER_ERROR_EXIT)

    return wrapper
