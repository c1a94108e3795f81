"""One exception type for everything a user can fix; entry points print it as a single line."""

import functools
import sys


class UserError(Exception):
    """A problem in the user's input or environment, with the fix in the message."""


def exit_on_user_error(main):
    """Run `main`, turning a UserError into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"hf-transfer: error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
