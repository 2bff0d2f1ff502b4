"""A quiet start: TensorFlow's C++ start-up lines are kept off the terminal unless --verbose_tf is given.

Import this module first in an entry point, before anything imports TensorFlow. Without --verbose_tf it sets
TF_CPP_MIN_LOG_LEVEL=3 (TensorFlow's C++ logs, e.g. "failed call to cuInit" on a CPU machine, are dropped)
and imports TensorFlow with file descriptor 2 sent to a temporary file: the lines absl prints before its
logging is initialised ("All log messages before absl::InitializeLog()", oneDNN, CUDA stubs) cannot be
switched off by the environment. What was caught is kept in `captured` and shown if the import fails.
With --verbose_tf nothing is hidden (TF_CPP_MIN_LOG_LEVEL=0). absl parses the flags later, so the flag is
read from sys.argv here; it is defined for absl from bert_tf.config.SharedSettings. SIGTERM from here until a run starts exits with
status 75 (bert_tf.lifecycle: one handler for the whole process): nothing is written yet, so the same command starts afresh.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Optional, Sequence

from bert_tf import lifecycle

FLAG = "verbose_tf"
HELP_NAMES = ("help", "helpshort", "helpfull", "helpxml", "h", "?")
captured = ""


def verbose_requested(argv: Sequence[str]) -> bool:
    """Whether the command line asks for --verbose_tf (the last of --verbose_tf / --noverbose_tf wins; the published
    `--verbose_tf True` / `False` form too)."""
    from bert_tf.config import published_booleans  # absl only, no TensorFlow

    verbose = False
    for arg in published_booleans(argv, lambda name: name == FLAG)[1:]:
        if arg == "--":
            break
        name, _, value = arg.lstrip("-").partition("=")
        if name == FLAG:
            verbose = value.lower() not in ("0", "false", "f", "no") if value else True
        elif name == "no" + FLAG:
            verbose = False
    return verbose


def help_requested(argv: Sequence[str]) -> bool:
    """Whether the command line asks absl for help (--help, --helpshort, --helpfull, --helpxml, -h, -?): the
    help is printed before a run starts, so TensorFlow need not be imported for it."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg.startswith("-") and arg.lstrip("-").partition("=")[0] in HELP_NAMES:
            return True
    return False


def import_tensorflow_quietly() -> str:
    """Import TensorFlow with fd 2 caught in a temporary file; returns what was printed there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow  # noqa: F401  (the import is the point: its start-up lines go to `sink`)
        except BaseException:
            _restore(saved, sink)
            sys.stderr.write(_read(sink))
            raise
        return _restore(saved, sink)


def _restore(saved: int, sink) -> str:
    """Put the original fd 2 back; the text caught in `sink`."""
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    return _read(sink)


def _read(sink) -> str:
    sink.seek(0)
    return sink.read().decode("utf-8", errors="replace")


def quiet_start(argv: Optional[Sequence[str]] = None) -> None:
    """Set TensorFlow's log level from --verbose_tf and, when quiet, import TensorFlow silently (not for a help
    request: the entry points import TensorFlow only after their flags are parsed, so `--help` answers at once)."""
    global captured
    argv = sys.argv if argv is None else argv
    if verbose_requested(argv):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" not in sys.modules and not help_requested(argv):
        captured = import_tensorflow_quietly()


lifecycle.install_sigterm_handler()  # before any run exists: SIGTERM exits with 75 (nothing written yet)
quiet_start()
