"""Errors every layer may raise, each with its own exit status in the CLI (library code never imports the CLI).

| error | exit | meaning |
|---|---|---|
| `UserError` | 2 | bad input: one line names it; nothing written was lost |
| `InputNotFound` | 2 | a `UserError` (and `FileNotFoundError`): a file or folder the user named is missing |
| `ResourceBusy` | 75 | another process holds something this one needs; retry later (EX_TEMPFAIL) |
| anything unexpected | 70 | an internal error (EX_SOFTWARE); the message says where the traceback went |
| `KeyboardInterrupt` | 130 | interrupted; re-run the same command to resume |
"""

from __future__ import annotations

EXIT_FAILED_ITEMS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A problem with the user's input (a flag, a file, a filter); printed as one line, exit status 2."""


class ResourceBusy(RuntimeError):
    """Another process holds a lock or file this one needs for longer than we are willing to wait."""


class InputNotFound(UserError, FileNotFoundError):
    """A file or folder the user named does not exist: exit status 2, and still a FileNotFoundError for callers."""
