"""Entry-point plumbing of every command: error exits, the output-directory check, flag values, run tables."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from typing import Any, Callable, Dict, Optional, Sequence

from bert_tf import lifecycle
from bert_tf.errors import (EXIT_DISK_FULL, EXIT_DIVERGED, EXIT_INPUT_ERROR, EXIT_INTERRUPTED, InputError,
                            RunInterrupted, TrainingDiverged)
from bert_tf.io_utils import STORAGE_ERRORS, storage_errno, write_json_atomic

MIN_FREE_BYTES = 200 * 2**20


def error_exit_status(run: Callable[[], Optional[int]], command: Optional[str] = None) -> int:
    """Run `run()` as one run of `command` (default: the program's name; see bert_tf.lifecycle) and turn the project's errors into one line on stderr and an exit status.

    Bad input: `error: FILE:LINE: problem`, 2 (the run's lifecycle has left the output folder as it was). A
    diverged loss: 3. A write that failed on a full disk or a read-only file system: 4, naming the path. SIGTERM at
    any moment: 75, saying that the same command continues the job. Anything else propagates (a bug deserves its
    traceback). Returns `run()`'s status (0 for None).
    """
    try:
        with lifecycle.running(command or os.path.basename(sys.argv[0])):
            return int(run() or 0)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except RunInterrupted as e:
        how = "run the same command again to resume" if e.saved else "run the same command again to finish the job"
        print(f"interrupted: {e}; {how}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        number = storage_errno(e)
        if number is None:
            raise
        print(f"error: {getattr(e, 'filename', None) or ''}: {STORAGE_ERRORS[number]} ({os.strerror(number)}); "
              "the last good checkpoint is kept: run the same command again once there is room", file=sys.stderr)
        return EXIT_DISK_FULL


def exit_on_error(main: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap an absl main: arguments left over after the flags are refused, and the project's errors exit with their
    status (see error_exit_status)."""

    @functools.wraps(main)
    def wrapped(argv: Any) -> None:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)  # TensorFlow's INFO chatter (checkpoint saver etc.)
        status = error_exit_status(lambda: main(refuse_leftover_arguments(argv)))
        if status:
            sys.exit(status)

    return wrapped


def refuse_leftover_arguments(argv: Sequence[str]) -> Sequence[str]:
    """argv when it holds only the program name; InputError naming what absl left unparsed otherwise."""
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
    return argv


def check_output_dir(path: str, overwrite: bool, flag: str, overwrite_flag: str = "--overwrite_output_dir",
                     action: str = "write into it") -> None:
    """Refuse a non-empty output directory unless overwriting was asked for; check it is writable with room.

    `flag` names the output flag and `overwrite_flag` the flag that allows overwriting, for the message.
    """
    if not path:
        raise InputError(f"--{flag} is required")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"--{flag} exists and is not a directory", path)
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise InputError(f"--{flag} is not empty; use {overwrite_flag} to {action}", path)
    parent = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    while parent and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        raise InputError("the output directory is not writable", parent)
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise InputError(f"only {free // 2**20} MiB free where the output goes; at least "
                         f"{MIN_FREE_BYTES // 2**20} MiB needed", parent)


def write_run_config(directory: str, values: Dict[str, Any], extra: Optional[Dict[str, Any]] = None) -> None:
    """Save the flags of a run (and anything else worth knowing) as run_config.json."""
    write_json_atomic(os.path.join(directory, "run_config.json"), {"flags": values, **(extra or {})})


def print_table(title: str, rows: Dict[str, Any]) -> None:
    """Print a titled two-column table of settings."""
    width = max((len(k) for k in rows), default=0)
    print(title)
    for key, value in rows.items():
        print(f"  {key.ljust(width)}  {value}")
    sys.stdout.flush()


def notice(message: str, path: Optional[str] = None, kind: str = "note") -> None:
    """Print a one-line notice (something the user should know that is not an error) to stderr, as
    'KIND: [PATH: ]message' (kind "warning": the run does something other than what was asked)."""
    where = f"{path}: " if path else ""
    print(f"{kind}: {where}{' '.join(message.split())}", file=sys.stderr)
    sys.stderr.flush()

