"""What both entry points do around the task itself: errors, output directories, seeds, devices."""

from __future__ import annotations

import fnmatch
import json
import os
import random
import shutil
import sys
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from bert_tf.errors import InputError
from bert_tf.io_utils import write_json_atomic

CHECKPOINT_DIR = "checkpoints"
UNFINISHED_RUN_FILES = {"run_config.json", "feature_cache", CHECKPOINT_DIR,  # a run killed early
                        "run.flags", "run.log", "job.sbatch", ".submitted"}  # written by scripts/run_finetuning_grid.sh


def exit_on_input_error(main: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap an absl main: bad input prints one line 'error: ...' and exits with status 2."""

    def wrapped(argv: Any) -> None:
        from absl import logging as absl_logging

        from bert_tf.training import TrainingDiverged, TrainingInterrupted

        absl_logging.set_verbosity(absl_logging.WARNING)  # TensorFlow's INFO chatter (checkpoint saver etc.)

        try:
            main(argv)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except TrainingDiverged as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(3)
        except TrainingInterrupted as e:
            how = "run the same command again to resume" if e.saved else "no state was saved"
            print(f"interrupted: {e}; {how}", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as e:
            if e.errno == 28:  # ENOSPC
                print(f"error: {e.filename or ''}: the disk is full; the last saved model is intact", file=sys.stderr)
                sys.exit(4)
            raise

    return wrapped


EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: try again (SLURM templates requeue on it)
NOT_FINGERPRINTED = {"verbose", "log_every", "overwrite_output_dir", "resume", "num_workers", "save_checkpoints_steps",
                     "do_predict", "do_eval", "predict_file", "predict_output", "distribution", "use_xla",
                     "eval_batch_size", "predict_batch_size", "cache_dir", "deterministic"}


def run_fingerprint(values: Dict[str, Any], data_files: Sequence[str]) -> Dict[str, Any]:
    """The settings and data files that must not change when a run is resumed."""
    fingerprint = {k: v for k, v in values.items() if k not in NOT_FINGERPRINTED}
    for path in data_files:
        stat = os.stat(path)
        fingerprint[f"file {os.path.abspath(path)}"] = f"{stat.st_size} bytes, modified {int(stat.st_mtime)}"
    return fingerprint


def prepare_training_dir(path: str, overwrite: bool, resume: bool, flag: str,
                         fingerprint: Dict[str, Any], chief: bool = True) -> Optional[Dict[str, Any]]:
    """Check the output directory before training; returns the saved state when the run resumes.

    A directory holding an interrupted run with the same settings is resumed (with --resume);
    one with other settings is refused; otherwise a non-empty directory needs --overwrite_output_dir.
    Only the chief checks and cleans the directory (other workers start while it is writing there).
    """
    from bert_tf.checkpointing import TrainingCheckpointer

    checkpoints = os.path.join(path, CHECKPOINT_DIR)
    saved = TrainingCheckpointer(checkpoints, None, None, fingerprint)
    state = saved.latest_state() if resume else None
    if state is not None:
        saved.check_compatible(state)
        return state
    if not chief:
        return None
    check_output_dir(path, overwrite or _only_unfinished_run(path), flag)
    if os.path.isdir(checkpoints):
        shutil.rmtree(checkpoints)  # --overwrite_output_dir --noresume: start over
    return None


def _only_unfinished_run(path: str) -> bool:
    """True when the directory holds only what a launcher writes (flagfile, log, job script) and what a run
    killed before its first checkpoint leaves."""
    if not os.path.isdir(path):
        return False
    leftovers = [name for name in os.listdir(path) if not fnmatch.fnmatch(name, "slurm-*.*")]
    return set(leftovers) <= UNFINISHED_RUN_FILES


def check_output_dir(path: str, overwrite: bool, flag: str) -> None:
    """Refuse a non-empty output directory unless overwriting was asked for; check it is writable."""
    if not path:
        raise InputError(f"--{flag} is required")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"--{flag} exists and is not a directory", path)
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise InputError(f"--{flag} is not empty; use --overwrite_output_dir to write into it", path)
    parent = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    while parent and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        raise InputError("the output directory is not writable", parent)
    free = shutil.disk_usage(parent).free
    if free < 200 * 2**20:
        raise InputError(f"only {free // 2**20} MiB free where the output goes; at least 200 MiB needed", parent)


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras."""
    import keras
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)


def flag_values(flags_module: Any) -> Dict[str, Any]:
    """The values of the flags defined by this project's scripts (JSON-serialisable)."""
    values = {}
    for name in flags_module.FLAGS:
        flag = flags_module.FLAGS[name]
        module = flags_module.FLAGS.find_module_defining_flag(name) or ""
        if module.startswith(("absl", "tensorflow", "keras")):
            continue
        value = flag.value
        if isinstance(value, (str, int, float, bool, type(None), list)):
            values[name] = value
    return values


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


def remove_tree_quietly(path: str) -> None:
    """Remove a directory this run created (after bad input), ignoring errors."""
    shutil.rmtree(path, ignore_errors=True)


def checkpoint_directory(out_dir: str, chief: bool) -> str:
    """Where this worker writes training checkpoints (non-chief workers write to a scratch directory)."""
    import atexit
    import tempfile

    if chief:
        return os.path.join(out_dir, CHECKPOINT_DIR)
    scratch = tempfile.mkdtemp(prefix="bert_tf_worker_ckpt_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def make_checkpointer(out_dir: str, chief: bool, model, optimizer, fingerprint: Dict[str, Any]):
    """The training-state checkpointer of a run: the chief writes OUT/checkpoints, other workers a scratch
    directory, and every worker resumes from OUT/checkpoints."""
    from bert_tf.checkpointing import TrainingCheckpointer

    return TrainingCheckpointer(checkpoint_directory(out_dir, chief), model, optimizer, fingerprint,
                                read_directory=os.path.join(out_dir, CHECKPOINT_DIR))
