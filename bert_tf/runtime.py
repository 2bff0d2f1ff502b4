"""What both entry points do around the task itself: errors, output directories, seeds, devices."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from typing import Any, Callable, Dict, Optional

import numpy as np

from bert_tf.errors import InputError
from bert_tf.io_utils import write_json_atomic


def exit_on_input_error(main: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap an absl main: bad input prints one line 'error: ...' and exits with status 2."""

    def wrapped(argv: Any) -> None:
        from bert_tf.training import TrainingDiverged

        try:
            main(argv)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except TrainingDiverged as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(3)
        except OSError as e:
            if e.errno == 28:  # ENOSPC
                print(f"error: {e.filename or ''}: the disk is full; the last saved model is intact", file=sys.stderr)
                sys.exit(4)
            raise

    return wrapped


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
