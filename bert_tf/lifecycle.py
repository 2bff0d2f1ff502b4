"""A run's lifecycle: its phases, its claims on output folders, and what it does when it is stopped.

One `Run` object per command (the entry point's, or a Python API call's) owns:
- the phase the run is in (`enter_phase`: start-up, train, checkpoint, validation, test, save, report, ...), which
  the SIGTERM message names and the preemption tests hook into (`PHASE_HOOKS`);
- its claims on output folders (bert_tf.ownership): finished when the run ends normally, abandoned on bad input
  (a folder it created goes again), left in place when it is stopped (the rerun continues it);
- the one SIGTERM handler of the process: outside a training loop SIGTERM raises RunInterrupted naming the phase
  (exit status 75 on the command line); inside one, the loop registers `on_sigterm` to save its state and stop
  after the current step. Before any run exists (TensorFlow's start-up), SIGTERM exits with 75 at once.

Modules deep in a run (the training loop, the checkpointer, the report writer) call the module-level
`enter_phase`, which goes to the run in progress (none: nothing is recorded).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, List, Optional

from bert_tf.errors import EXIT_INTERRUPTED, InputError, RunInterrupted

# Called with a phase's name whenever a run enters it (a seam for the preemption tests, like Trainer.step_hooks).
PHASE_HOOKS: List[Callable[[str], None]] = []
_runs: List["Run"] = []  # the runs in progress, innermost last


class Run:
    """One command's run (see the module docstring). Use as a context manager around the whole command."""

    def __init__(self, command: str):
        self.command = command
        self.phase = "start-up"
        self.claims: List[Any] = []  # bert_tf.ownership.OutputClaim
        self._sigterm_callbacks: List[Callable[[], None]] = []

    # ----- phases ---------------------------------------------------------------------------------------------
    def enter_phase(self, name: str) -> None:
        """Record that the run enters phase `name`."""
        self.phase = name
        for hook in PHASE_HOOKS:
            hook(name)

    # ----- claims ---------------------------------------------------------------------------------------------
    def add_claim(self, claim: Any) -> None:
        """Track a claim on an output folder until the run ends."""
        self.claims.append(claim)

    def claim_for(self, directory: str) -> Optional[Any]:
        """This run's claim on `directory`, if it has one."""
        for claim in self.claims:
            if os.path.abspath(claim.directory) == os.path.abspath(directory):
                return claim
        return None

    def _finish(self) -> None:
        for claim in list(self.claims):
            claim.finish()
        self.claims.clear()

    def _abandon(self) -> None:
        for claim in list(self.claims):
            claim.abandon()
        self.claims.clear()

    # ----- SIGTERM --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def on_sigterm(self, callback: Callable[[], None]) -> Iterator[None]:
        """While the block runs, SIGTERM calls `callback` (e.g. the training loop's "save and stop") instead of
        raising RunInterrupted."""
        self._sigterm_callbacks.append(callback)
        try:
            yield
        finally:
            self._sigterm_callbacks.remove(callback)

    def _sigterm(self) -> None:
        if self._sigterm_callbacks:
            self._sigterm_callbacks[-1]()
            return
        raise RunInterrupted(self.phase)

    # ----- the run as a block ---------------------------------------------------------------------------------
    def __enter__(self) -> "Run":
        _runs.append(self)
        install_sigterm_handler()
        try:
            self.enter_phase("start-up")
        except BaseException:  # stopped as it starts (SIGTERM, a phase hook): no __exit__ follows
            _runs.remove(self)
            raise
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None:
                self._finish()
            elif issubclass(kind, InputError):
                self._abandon()
            else:
                self.claims.clear()  # stopped: the owner files stay for the rerun
        finally:
            _runs.remove(self)


def current() -> Optional[Run]:
    """The run in progress (the innermost), or None."""
    return _runs[-1] if _runs else None


def enter_phase(name: str) -> None:
    """Record that the run in progress enters phase `name` (nothing without a run)."""
    run = current()
    if run is not None:
        run.enter_phase(name)


def current_phase() -> str:
    """The phase of the run in progress ("start-up" without one)."""
    run = current()
    return run.phase if run is not None else "start-up"


@contextlib.contextmanager
def on_sigterm(callback: Callable[[], None]) -> Iterator[None]:
    """`Run.on_sigterm` of the run in progress (a block without a run: SIGTERM keeps its handling)."""
    run = current()
    if run is None:
        yield
        return
    with run.on_sigterm(callback):
        yield


def _handle_sigterm(signum: int, frame: Any) -> None:
    """The process's one SIGTERM handler: the run in progress decides; before any run, exit 75."""
    run = current()
    if run is not None:
        run._sigterm()
        return
    print("interrupted: stopped by SIGTERM during start-up; run the same command again to finish the job",
          file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INTERRUPTED)


def install_sigterm_handler() -> None:
    """Install the SIGTERM handler (the main thread only; elsewhere signals cannot be handled)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handle_sigterm)


@contextlib.contextmanager
def running(command: str) -> Iterator[Run]:
    """The run in progress, or a new `Run` of `command` for the block (so a job's API functions can call each
    other, and the command line can call them, without starting a second run)."""
    run = current()
    if run is not None:
        yield run
        return
    with Run(command) as run:
        yield run
