"""Which run owns an output folder, and what a run does when it is stopped: SIGKILL, SIGTERM, a full disk.

Before it writes anything, a run leaves `.bert_tf_run.json` in its output folder: the run's identity (its
settings and data files). The same command run again (a requeued job, a rerun after a kill) finds its own
identity there and continues, whatever partial output the killed run left (start-up files, TensorBoard events,
a half-built feature cache, temporaries); a folder with another run's results, or another command's unfinished
run, is refused as before. The file is removed when the run ends normally.

Claims belong to the run in progress (bert_tf.lifecycle.Run), which finishes or abandons them when it ends.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from typing import Any, Callable, Dict, List, Optional

from bert_tf import lifecycle
from bert_tf.errors import InputError
from bert_tf.io_utils import clean_interrupted_writes, write_json_atomic

OWNER_FILE = ".bert_tf_run.json"


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
        for action in self.on_finish:
            action()

    def keep(self) -> None:
        """The run has saved training states: bad input from now on leaves the folder as an interrupted run's (its
        checkpoints and snapshots stay), not removed."""
        self.created, self.resumed = False, True

    def abandon(self) -> None:
        """Bad input stopped the run: leave the folder as it was (removed when this run created it)."""
        if self.created:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif not self.resumed:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.owner_file)


def read_owner(directory: str) -> Optional[Dict[str, Any]]:
    """The identity of the unfinished run that owns `directory`, or None."""
    try:
        with open(os.path.join(directory, OWNER_FILE), encoding="utf-8") as f:
            return json.load(f).get("identity")
    except (OSError, ValueError, AttributeError):
        return None


# What makes a folder unwritable for this user (a full disk is not bad input: io_utils names it, exit 4).
UNWRITABLE = (errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS)


def claim_output_dir(directory: str, identity: Dict[str, Any], overwrite: bool,
                     check: Callable[[], None]) -> OutputClaim:
    """Take `directory` for the run of `identity`, before it writes anything there.

    A folder the run in progress has claimed already stays its own. An unfinished run of the same identity there is this
    run's own: it is continued (the claim is `resumed`)
    and `check` is skipped. An unfinished run of another identity is refused unless `overwrite`. Otherwise
    `check()` decides whether the folder may be written (it raises InputError when not: another run's results).
    """
    run = lifecycle.current()
    own = run.claim_for(directory) if run is not None else None
    if own is not None:
        return own  # this run owns it already (training, then prediction into the same folder)
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
    claim = OutputClaim(directory, identity, created, resumed)
    try:
        os.makedirs(directory, exist_ok=True)
        if not resumed:
            write_json_atomic(claim.owner_file, {"identity": identity, "pid": os.getpid()})
    except OSError as err:
        if err.errno not in UNWRITABLE:
            raise
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise InputError(f"the output folder cannot be created or written: {err.strerror}", directory) from None
    if run is not None:
        run.add_claim(claim)
    return claim
