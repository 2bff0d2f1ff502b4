"""Which run owns an output folder, and what a run does when it is stopped: SIGKILL, SIGTERM, a full disk.

Before it writes anything, a run leaves `.bert_tf_run.json` in its output folder: the run's identity (its
settings and data files). The same command run again (a requeued job, a rerun after a kill) finds its own
identity there and continues, whatever partial output the killed run left (start-up files, TensorBoard events,
a half-built feature cache, temporaries); a folder with another run's results, or another command's unfinished
run, is refused as before. The file is removed when the run ends normally.

A run is a sequence of named phases (`enter_phase`): the SIGTERM message says which one was stopped, and the
preemption tests stop runs at exact phases through `PHASE_HOOKS`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from bert_tf.errors import InputError, RunInterrupted
from bert_tf.io_utils import clean_interrupted_writes, write_json_atomic
from bert_tf.published_flags import IGNORED_FLAGS

OWNER_FILE = ".bert_tf_run.json"
# Flags that change no output: a rerun that differs only in them is still the same run (the published no-op
# flags among them: a rerun that drops --do_prepare=true continues the run).
NOT_IDENTIFYING = {"verbose", "verbose_tf", "log_every", "overwrite_output_dir", "resume", "num_workers",
                   "keep_checkpoints", "flagfile", *IGNORED_FLAGS}

# Called with a phase's name whenever a run enters it (a seam for the preemption tests, like Trainer.step_hooks).
PHASE_HOOKS: List[Callable[[str], None]] = []
_current_phase = ["start-up"]
_active_claims: List["OutputClaim"] = []


def enter_phase(name: str) -> None:
    """Record that the run enters phase `name` (start-up, train, checkpoint, validation, test, save, report...)."""
    _current_phase[0] = name
    for hook in PHASE_HOOKS:
        hook(name)


def current_phase() -> str:
    """The phase the run is in."""
    return _current_phase[0]


def fingerprint(values: Dict[str, Any], data_files: Sequence[str], ignore: set) -> Dict[str, Any]:
    """Flag values (less `ignore`) and each data file's size and modification time ("missing" when absent)."""
    result = {k: v for k, v in values.items() if k not in ignore}
    for path in data_files:
        try:
            stat = os.stat(path)
        except OSError:  # a missing input is reported where it is read, as bad input
            result[f"file {os.path.abspath(path)}"] = "missing"
            continue
        result[f"file {os.path.abspath(path)}"] = f"{stat.st_size} bytes, modified {int(stat.st_mtime)}"
    return result


def run_identity(command: str, values: Dict[str, Any], data_files: Sequence[str] = ()) -> Dict[str, Any]:
    """What makes two runs the same run: the command, every flag that can change an output, the data files."""
    return {"command": command, **fingerprint(values, data_files, NOT_IDENTIFYING)}


def describe_differences(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """The settings whose values differ between two fingerprints."""
    names = sorted(set(saved) | set(current))
    return [f"{n} ({saved.get(n)!r} then, {current.get(n)!r} now)" for n in names if saved.get(n) != current.get(n)]


class OutputClaim:
    """An output folder this run owns until `finish` (the run ended normally) or `abandon` (bad input)."""

    def __init__(self, directory: str, identity: Dict[str, Any], created: bool, resumed: bool):
        self.directory, self.identity, self.created, self.resumed = directory, identity, created, resumed
        self.on_finish: List[Callable[[], None]] = []  # run after the owner file is gone (e.g. delete checkpoints)

    @property
    def owner_file(self) -> str:
        """The file that marks the folder as this run's."""
        return os.path.join(self.directory, OWNER_FILE)

    def finish(self) -> None:
        """The run ended normally: the folder is no longer an unfinished run's (call after the last output)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.owner_file)
        _forget(self)
        for action in self.on_finish:
            action()

    def abandon(self) -> None:
        """Bad input stopped the run: leave the folder as it was (removed when this run created it)."""
        if self.created:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif not self.resumed:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.owner_file)
        _forget(self)


def _forget(claim: OutputClaim) -> None:
    if claim in _active_claims:
        _active_claims.remove(claim)


def abandon_claims() -> None:
    """Abandon every claim of this process (after bad input; see cli.error_exit_status)."""
    for claim in list(_active_claims):
        claim.abandon()


def forget_claims() -> None:
    """Stop tracking this process's claims, leaving their owner files (a stopped run's, for its rerun)."""
    _active_claims.clear()


def finish_claims() -> None:
    """Finish every claim of this process (the run ended normally; see cli.error_exit_status)."""
    for claim in list(_active_claims):
        claim.finish()


def read_owner(directory: str) -> Optional[Dict[str, Any]]:
    """The identity of the unfinished run that owns `directory`, or None."""
    try:
        with open(os.path.join(directory, OWNER_FILE), encoding="utf-8") as f:
            return json.load(f).get("identity")
    except (OSError, ValueError, AttributeError):
        return None


def claim_output_dir(directory: str, identity: Dict[str, Any], overwrite: bool,
                     check: Callable[[], None]) -> OutputClaim:
    """Take `directory` for the run of `identity`, before it writes anything there.

    A folder this process has claimed already stays its own. An unfinished run of the same identity there is this
    run's own: it is continued (the claim is `resumed`)
    and `check` is skipped. An unfinished run of another identity is refused unless `overwrite`. Otherwise
    `check()` decides whether the folder may be written (it raises InputError when not: another run's results).
    """
    for claim in _active_claims:
        if os.path.abspath(claim.directory) == os.path.abspath(directory):
            return claim  # this run owns it already (training, then prediction into the same folder)
    owner = read_owner(directory)
    resumed = owner == identity
    if owner is not None and not resumed and not overwrite:
        raise InputError("holds an unfinished run of another command or settings: "
                         + "; ".join(describe_differences(owner, identity))
                         + ". Run that command again to finish it, or use --overwrite_output_dir", directory)
    if resumed:
        clean_interrupted_writes(directory)
    else:
        check()
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    claim = OutputClaim(directory, identity, created, resumed)
    if not resumed:
        write_json_atomic(claim.owner_file, {"identity": identity, "pid": os.getpid()})
    _active_claims.append(claim)
    return claim


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises RunInterrupted naming the phase (exit status 75 via cli): outside the
    training loop (which saves its state first) nothing is worth finishing, and nothing left blocks a rerun."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(current_phase())

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
