"""The project's own error for bad user input: one line, naming the file and the line."""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


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
