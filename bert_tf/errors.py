"""The project's errors and exit statuses: bad input (one line naming file and line), a diverged or interrupted run."""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

EXIT_INPUT_ERROR = 2  # bad user input
EXIT_DIVERGED = 3  # the training loss became NaN or infinite
EXIT_DISK_FULL = 4  # the disk filled up (or the file system is read-only) while writing
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving; try again (the SLURM templates requeue on it)


def first_line(error: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type's name when the message is empty
    (for one-line error messages that quote a library's error)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


class InputError(Exception):
    """Bad user input (data file, flag, model directory). Entry points print it and exit with 2."""

    def __init__(self, problem: str, path: Optional[PathLike] = None, line: Optional[int] = None):
        self.problem = " ".join(str(problem).split())  # always a single line
        self.path = None if path is None else os.fspath(path)
        self.line = line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message shown to the user: 'FILE:LINE: problem'."""
        if self.path is None:
            return self.problem
        if self.line is None:
            return f"{self.path}: {self.problem}"
        return f"{self.path}:{self.line}: {self.problem}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # Raised in a featurizing process and re-raised here: keep the path and line apart.
        return InputError, (self.problem, self.path, self.line)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class RunInterrupted(RuntimeError):
    """A run stopped by SIGTERM outside the training loop (start-up, test, save, reports, prediction)."""

    saved = False

    def __init__(self, phase: str):
        self.phase = phase
        super().__init__(f"stopped by SIGTERM during {phase}")


class TrainingInterrupted(RunInterrupted):
    """Training stopped on SIGTERM (after saving its state when it could)."""

    def __init__(self, step: int, saved: bool):
        RuntimeError.__init__(self, f"stopped by SIGTERM at step {step}" + ("; training state saved" if saved else ""))
        self.phase, self.step, self.saved = "train", step, saved
