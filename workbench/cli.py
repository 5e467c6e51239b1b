"""`workbench` command line: one subcommand per stage, discovered from `workbench.commands`.

Exit status (see `workbench.errors`): 0 done; 1 some items failed; 2 bad input (argparse errors, `UserError`, a
missing file the user named); 70 internal error (one line; the traceback goes to a file); 75 a busy resource
(`ResourceBusy`); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from workbench import commands
from workbench.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ResourceBusy,
    UserError,
)

__all__ = ["UserError", "build_parser", "main"]

MAX_MESSAGE_CHARS = 500


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of the one module `only` (what a run of that command needs: the other
    commands' imports, pandas or torch among them, are not paid for)."""
    parser = argparse.ArgumentParser(
        prog="workbench", description="BIOMEDICA Workbench: PMC OA to curated image-caption data."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or (only is not None and info.name != only):  # `_x`: shared helpers
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = sub.add_parser(module.NAME, help=module.HELP.replace("%", "%%"), description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_module(argv)).parse_args(argv)  # a bad flag: argparse prints usage and exits 2
    prefix = f"workbench {args.command}"
    try:
        return int(args._run(args) or 0)
    except ResourceBusy as error:
        print(f"{prefix}: busy: {_one_line(error)}", file=sys.stderr)
        return EXIT_BUSY
    except UserError as error:
        print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FileNotFoundError as error:
        if _names_user_input(error, args):
            print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _internal_error(prefix, error, args)
    except Exception as error:
        return _internal_error(prefix, error, args)


def _command_module(argv: Sequence[str]) -> str | None:
    """The module of the subcommand `argv` names first, None when it names none (then every command is listed)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    if not first or argv[0].startswith("-"):
        return None
    module = first.replace("-", "_")
    return module if any(info.name == module for info in pkgutil.iter_modules(commands.__path__)) else None


def _internal_error(prefix: str, error: BaseException, args: argparse.Namespace) -> int:
    """One line naming the error and the file that holds its traceback; exit status 70."""
    where = _write_traceback(error, args)
    kind = type(error).__qualname__
    module = type(error).__module__
    if module != "builtins":
        kind = f"{module}.{kind}"
    place = f"traceback in {where}" if where else "traceback above"
    if where is None:
        traceback.print_exception(error, file=sys.stderr)
    print(f"{prefix}: internal error: {kind}: {_one_line(error)}; {place}", file=sys.stderr)
    return EXIT_INTERNAL


def _write_traceback(error: BaseException, args: argparse.Namespace) -> Path | None:
    """Write the traceback under WS/tmp when the command names an existing workspace, else the system temp folder."""
    text = "".join(traceback.format_exception(error))
    name = f"workbench-{args.command}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.traceback.txt"
    for folder in _traceback_folders(args):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(f"workbench {' '.join(sys.argv[1:])}\n\n{text}")
            return path
        except OSError:
            continue
    return None


def _traceback_folders(args: argparse.Namespace) -> Iterator[Path]:
    workspace = getattr(args, "workspace", None)
    if workspace and Path(workspace).is_dir():
        yield Path(workspace).resolve() / "tmp"
    yield Path(tempfile.gettempdir())


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _names_user_input(error: FileNotFoundError, args: argparse.Namespace) -> bool:
    """Whether a missing file is one the user named on the command line (bad input) rather than our own."""
    given = [str(v) for v in _flag_values(args)]
    if error.filename is not None:
        missing = os.path.abspath(os.path.expanduser(os.fsdecode(error.filename)))
        return any(os.path.abspath(os.path.expanduser(value)) == missing for value in given)
    paths = [value for value in given if os.sep in value or Path(value).suffix]  # not --name, --action, ...
    return any(value in str(error) for value in paths)  # raised by our code, with the path in the text


def _flag_values(args: argparse.Namespace) -> Iterator[str | Path]:
    for key, value in vars(args).items():
        if key.startswith("_") or key == "command":
            continue
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, str | Path) and str(item):
                yield item


if __name__ == "__main__":
    sys.exit(main())
