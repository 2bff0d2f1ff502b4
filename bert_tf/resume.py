"""Resuming a killed or preempted run: the training state on disk, the run's fingerprint, the output-folder check.

A checkpoint is a TensorFlow checkpoint of the model and optimizer (weights, Adam slots, step
counter that drives the learning-rate schedule, loss scale, dropout RNG state) plus a JSON file
with the loop's position (epoch, step), history, callback state (best score, patience), and an
.npz of the epoch's accumulated training predictions. The last two checkpoints are kept; the JSON
is written last, so a checkpoint without it (a kill while saving) is never used.
"""

from __future__ import annotations

import atexit
import fnmatch
import json
import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Optional

import numpy as np

from bert_tf import lifecycle, ownership
from bert_tf.cli import check_output_dir
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path, before_write, naming_storage_errors, write_json_atomic

CHECKPOINT_DIR = "checkpoints"
STATE_SUFFIX = ".state.json"
ARRAYS_SUFFIX = ".arrays.npz"
TENSORBOARD_DIR = "tensorboard"
UNFINISHED_RUN_FILES = {"run_config.json", "feature_cache", CHECKPOINT_DIR,  # a run of an older version killed early
                        "run.flags", "run.log", "job.sbatch", ".submitted"}  # written by scripts/run_finetuning_grid.sh

class TrainingCheckpointer:
    """Saves and restores the full training state, keeping the last `keep` states.

    It writes to `directory` and reads from `read_directory` (the same, except on the non-chief workers of a
    multi-worker run, which resume from the chief's checkpoints but write to a scratch directory).
    `resume_state` is the state the run resumes from (None: it starts afresh). `attach` gives it the model
    and optimizer once they exist.
    """

    def __init__(self, directory: str, fingerprint: Dict[str, Any], keep: int = 2,
                 read_directory: Optional[str] = None):
        self.directory, self.fingerprint, self.keep = directory, fingerprint, keep
        self.read_directory = read_directory or directory
        self.resume_state: Optional[Dict[str, Any]] = None
        self.checkpoint = None
        self.claim: Optional[ownership.OutputClaim] = None  # the chief's claim on the output folder

    def attach(self, model, optimizer) -> None:
        """Track `model` and `optimizer` (and the model's dropout RNG states, which the object graph misses)."""
        import tensorflow as tf

        seeds = {f"seed_{i}": v.value for i, v in enumerate(model.non_trainable_variables)
                 if "seed_generator" in v.path}
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **seeds)

    # ----- reading ----------------------------------------------------------------------------
    def _prefixes(self, directory: Optional[str] = None) -> List[str]:
        directory = directory or self.read_directory
        if not os.path.isdir(directory):
            return []
        numbers = []
        for name in os.listdir(directory):
            match = re.fullmatch(r"ckpt-(\d+)" + re.escape(STATE_SUFFIX), name)
            if match and os.path.isfile(os.path.join(directory, f"ckpt-{match.group(1)}.index")):
                numbers.append(int(match.group(1)))
        return [os.path.join(directory, f"ckpt-{n}") for n in sorted(numbers)]

    def latest_state(self) -> Optional[Dict[str, Any]]:
        """The loop state of the newest complete checkpoint, or None."""
        for prefix in reversed(self._prefixes()):
            try:
                with open(prefix + STATE_SUFFIX, encoding="utf-8") as f:
                    state = json.load(f)
                state["prefix"] = prefix
                return state
            except (OSError, ValueError):
                continue
        return None

    def check_compatible(self, state: Dict[str, Any]) -> None:
        """Refuse to resume a run whose model- or data-changing settings differ from this one's."""
        differences = ownership.describe_differences(state.get("fingerprint", {}), self.fingerprint)
        if differences:
            raise InputError(
                "holds an interrupted run with other settings, so it cannot be resumed: "
                + "; ".join(differences)
                + ". Use another output directory, or --overwrite_output_dir --noresume to start over",
                self.read_directory)

    def restore(self, state: Dict[str, Any]) -> Dict[str, np.ndarray]:
        """Load weights and optimizer state of `state`'s checkpoint; returns its saved arrays."""
        # write() stores no save counter; everything else must match
        self.checkpoint.restore(state["prefix"]).assert_nontrivial_match().expect_partial()
        arrays_path = state["prefix"] + ARRAYS_SUFFIX
        if not os.path.isfile(arrays_path):
            return {}
        with np.load(arrays_path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    # ----- writing ----------------------------------------------------------------------------
    def save(self, state: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> str:
        """Write a checkpoint for `state["global_step"]` and drop the ones beyond the last `keep`."""
        prefix = os.path.join(self.directory, f"ckpt-{int(state['global_step'])}")
        lifecycle.enter_phase("checkpoint")
        with naming_storage_errors(prefix):  # a full disk: this checkpoint is never used, the previous ones stay
            before_write(prefix)
            os.makedirs(self.directory, exist_ok=True)
            self.checkpoint.write(prefix)
            with atomic_path(prefix + ARRAYS_SUFFIX) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
            self._write_state(prefix, {**state, "fingerprint": self.fingerprint})
        self._prune()
        return prefix

    def _write_state(self, prefix: str, state: Dict[str, Any]) -> None:
        """Write the JSON that makes a checkpoint complete (the last file of a save)."""
        write_json_atomic(prefix + STATE_SUFFIX, state)

    def _prune(self) -> None:
        for prefix in self._prefixes(self.directory)[: -self.keep]:
            directory, base = os.path.split(prefix)
            for name in os.listdir(directory):
                if name == base + STATE_SUFFIX:
                    continue
                if name.startswith(base + "."):
                    os.remove(os.path.join(directory, name))
            os.remove(prefix + STATE_SUFFIX)  # last, so a half-pruned checkpoint is never taken as complete


def checkpoint_directory(out_dir: str, chief: bool) -> str:
    """Where this worker writes training checkpoints (non-chief workers write to a scratch directory)."""
    if chief:
        return os.path.join(out_dir, CHECKPOINT_DIR)
    scratch = tempfile.mkdtemp(prefix="bert_tf_worker_ckpt_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def finish_training(checkpointer: TrainingCheckpointer, keep: bool) -> None:
    """After training ended normally: delete its resume checkpoints unless `keep` (--keep_checkpoints), once the
    whole run has ended normally (its claim on the output folder finishes: every output written), so that a kill
    before then resumes from the finished state instead of training again. Non-chief workers delete their scratch
    directory now."""
    if keep:
        return
    claim = getattr(checkpointer, "claim", None)
    if claim is None:
        shutil.rmtree(checkpointer.directory, ignore_errors=True)
    else:
        claim.on_finish.append(lambda: shutil.rmtree(checkpointer.directory, ignore_errors=True))


def keep_saved_states(checkpointer: TrainingCheckpointer) -> None:
    """Bad input stopped a run that has saved training states: its folder stays as an interrupted run's (the last
    good checkpoint kept) instead of being removed with the rest of what the run created."""
    claim = getattr(checkpointer, "claim", None)
    if claim is not None and checkpointer.latest_state() is not None:
        claim.keep()


def prepare_training_dir(path: str, overwrite: bool, resume: bool, flag: str, fingerprint: Dict[str, Any],
                         chief: bool = True, identity: Optional[Dict[str, Any]] = None) -> TrainingCheckpointer:
    """Check and claim the output directory before training (see ownership); returns the run's checkpointer.

    A directory holding an interrupted run with the same settings is resumed (with --resume: the checkpointer's
    `resume_state` is set), also when it was killed before its first checkpoint (it owns the folder); one with
    other settings is refused; otherwise a non-empty directory needs --overwrite_output_dir. Only the chief
    checks, claims and cleans the directory (other workers start while it is writing there). `identity`
    (default: the fingerprint) is the whole command's, for the claim.
    """
    checkpoints = os.path.join(path, CHECKPOINT_DIR)
    reader = TrainingCheckpointer(checkpoints, fingerprint)
    state = reader.latest_state() if resume else None
    if state is not None:
        reader.check_compatible(state)
    claim = None
    if chief:
        def check() -> None:
            if state is None:
                check_output_dir(path, overwrite or _only_unfinished_run(path), flag)
                shutil.rmtree(checkpoints, ignore_errors=True)  # --overwrite_output_dir --noresume: start over

        claim = ownership.claim_output_dir(path, identity or fingerprint, overwrite or state is not None, check)
        if claim.resumed and state is None:  # killed before its first checkpoint: it starts again
            for name in (TENSORBOARD_DIR, CHECKPOINT_DIR):
                shutil.rmtree(os.path.join(path, name), ignore_errors=True)
    checkpointer = TrainingCheckpointer(checkpoint_directory(path, chief), fingerprint, read_directory=checkpoints)
    checkpointer.resume_state = state
    checkpointer.claim = claim
    return checkpointer


def _only_unfinished_run(path: str) -> bool:
    """True when the directory holds only what a launcher writes (flagfile, log, job script) and what a run
    killed before its first checkpoint leaves."""
    if not os.path.isdir(path):
        return False
    leftovers = [name for name in os.listdir(path) if not fnmatch.fnmatch(name, "slurm-*.*")]
    return set(leftovers) <= UNFINISHED_RUN_FILES


def pack_arrays(parts: Dict[str, List[np.ndarray]]) -> Dict[str, np.ndarray]:
    """Flatten lists of arrays into one dict for np.savez ('key/i' entries)."""
    return {f"{key}/{i}": a for key, values in parts.items() for i, a in enumerate(values)}


def unpack_arrays(arrays: Dict[str, np.ndarray], keys: List[str]) -> Dict[str, List[np.ndarray]]:
    """The inverse of pack_arrays for the given keys."""
    out: Dict[str, List[np.ndarray]] = {k: [] for k in keys}
    for key in keys:
        i = 0
        while f"{key}/{i}" in arrays:
            out[key].append(arrays[f"{key}/{i}"])
            i += 1
    return out
