"""Training state on disk, so that a killed or preempted run resumes where it stopped.

A checkpoint is a TensorFlow checkpoint of the model and optimizer (weights, Adam slots, step
counter that drives the learning-rate schedule, loss scale, dropout RNG state) plus a JSON file
with the loop's position (epoch, step), history, callback state (best score, patience), and an
.npz of the epoch's accumulated training predictions. The last two checkpoints are kept; the JSON
is written last, so a checkpoint without it (a kill while saving) is never used.
"""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf

from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path, write_json_atomic

STATE_SUFFIX = ".state.json"
ARRAYS_SUFFIX = ".arrays.npz"
FAULT_ENV = "BERT_TF_FAULT"  # fault injection for the resume tests, e.g. "kill_after_step=7"


def fault_requested(kind: str, step: int) -> bool:
    """True when the BERT_TF_FAULT environment variable asks for `kind` at `step` (tests only)."""
    spec = os.environ.get(FAULT_ENV, "")
    return any(part == f"{kind}={step}" for part in spec.split(","))


def inject_fault(kind: str, step: int) -> None:
    """Kill this process (SIGKILL) or send it SIGTERM when the fault-injection variable asks for it."""
    if fault_requested(kind, step):
        os.kill(os.getpid(), signal.SIGKILL if kind.startswith("kill") else signal.SIGTERM)


def describe_differences(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """The settings whose values differ between two fingerprints."""
    names = sorted(set(saved) | set(current))
    return [f"{n} ({saved.get(n)!r} then, {current.get(n)!r} now)" for n in names if saved.get(n) != current.get(n)]


class TrainingCheckpointer:
    """Saves and restores the full training state in `directory`, keeping the last `keep` states."""

    def __init__(self, directory: str, model, optimizer, fingerprint: Dict[str, Any], keep: int = 2,
                 enabled: bool = True, read_directory: Optional[str] = None):
        self.directory, self.fingerprint, self.keep, self.enabled = directory, fingerprint, keep, enabled
        # Non-chief workers resume from the chief's checkpoints but write to a scratch directory.
        self.read_directory = read_directory or directory
        self.checkpoint = None
        if model is not None:
            # Keras' dropout RNG states are not reached by the object graph: name them explicitly.
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
        differences = describe_differences(state.get("fingerprint", {}), self.fingerprint)
        if differences:
            raise InputError(
                "holds an interrupted run with other settings, so it cannot be resumed: "
                + "; ".join(differences)
                + ". Use another output directory, or --overwrite_output_dir --noresume to start over",
                self.directory)

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
    def save(self, state: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> Optional[str]:
        """Write a checkpoint for `state["global_step"]` and drop the ones beyond the last `keep`."""
        if not self.enabled:
            return None
        os.makedirs(self.directory, exist_ok=True)
        step = int(state["global_step"])
        prefix = os.path.join(self.directory, f"ckpt-{step}")
        self.checkpoint.write(prefix)
        with atomic_path(prefix + ARRAYS_SUFFIX) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        inject_fault("kill_during_save", step)
        write_json_atomic(prefix + STATE_SUFFIX, {**state, "fingerprint": self.fingerprint})
        self._prune()
        return prefix

    def _prune(self) -> None:
        for prefix in self._prefixes(self.directory)[: -self.keep]:
            directory, base = os.path.split(prefix)
            for name in os.listdir(directory):
                if name == base + STATE_SUFFIX:
                    continue
                if name.startswith(base + "."):
                    os.remove(os.path.join(directory, name))
            os.remove(prefix + STATE_SUFFIX)  # last, so a half-pruned checkpoint is never taken as complete


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
