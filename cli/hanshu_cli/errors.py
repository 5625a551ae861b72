"""The one kind of failure the command reports as a readable line (never a traceback)."""

from __future__ import annotations


class CliError(Exception):
    """What went wrong, said in one line a user can act on; ``exit_code`` is the status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
