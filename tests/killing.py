"""Real SIGKILLs for the resume tests: `kill -9` from the test to a running script once a resume checkpoint is
on disk, then what the next run must show to prove it resumed (not restarted).

A resumed run names the newest complete checkpoint on disk (global step N, epoch E, step S of it), starts its
epoch at step S + 1, and its own TensorBoard events (--log_every=1: one loss a step) start at step N + 1; a
restart would start at step 1.

The killed run is a process; the run after it can be one too (conftest.run_script) or the same command line run in
this process (`run_in_process`), which reads only what the killed process left on disk, as a new process would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Set

import conftest
from conftest import ROOT


def kill_after_first_checkpoint(args: Sequence[str], out: Path) -> Dict:
    """Start the script `args` writing into `out`, SIGKILL it as soon as a complete resume checkpoint (its
    .state.json, written last) appears, and return the newest complete checkpoint's state left on disk."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return kill_all_after_first_checkpoint([[sys.executable, *map(str, args)]], [env], out)


def kill_all_after_first_checkpoint(commands: Sequence[Sequence[str]], envs: Sequence[Dict[str, str]],
                                    out: Path) -> Dict:
    """Start `commands` together (e.g. the workers of one run writing into `out`), SIGKILL every one as soon as a
    complete resume checkpoint appears in `out`, and return the newest complete checkpoint's state on disk."""
    logs = [killed_log(out, i) for i in range(len(commands))]
    processes = []
    try:
        for command, env, log in zip(commands, envs, logs):
            with open(log, "w", encoding="utf-8") as stream:
                processes.append(subprocess.Popen(list(command), cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT,
                                                  env=env))
        while all(p.poll() is None for p in processes) and not list((out / "checkpoints").glob("ckpt-*.state.json")):
            time.sleep(0.02)  # bounded by the test's timeout (pytest-timeout)
        for process in processes:
            process.send_signal(signal.SIGKILL)
        statuses = [process.wait() for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert statuses == [-signal.SIGKILL] * len(processes), (
        f"a process ended ({statuses}) before it could be killed:\n" + "\n".join(l.read_text()[-3000:] for l in logs))
    return newest_state(out)


def killed_log(out: Path, index: int = 0) -> Path:
    """Where the output of the `index`-th killed process writing into `out` went."""
    return out.parent / f"{out.name}.killed{index}.log"


def newest_state(out: Path) -> Dict:
    """The training state of the newest complete checkpoint under out/checkpoints."""
    states = [json.loads(p.read_text(encoding="utf-8")) for p in (out / "checkpoints").glob("ckpt-*.state.json")]
    assert states, f"no complete checkpoint in {out / 'checkpoints'}"
    return max(states, key=lambda state: int(state["global_step"]))


def event_files(out: Path) -> Set[Path]:
    """The TensorBoard event files of the training side."""
    return set((out / "tensorboard" / "train").glob("events.out.tfevents.*"))


def logged_steps(files: Set[Path], tag: str = "loss") -> List[int]:
    """The steps at which `files` recorded `tag`, in order."""
    import tensorflow as tf

    return sorted(event.step for path in files for event in tf.compat.v1.train.summary_iterator(str(path))
                  for value in event.summary.value if value.tag == tag)


def assert_resumed(stdout: str, state: Dict, out: Path, events_before: Set[Path], total_steps: int) -> None:
    """The run that printed `stdout` resumed from `state` (not from scratch): it names that checkpoint, its
    global step, epoch and step in the epoch, continues the epoch at the next step, and its own events cover
    the steps after the checkpoint's and no earlier one."""
    step, epoch, in_epoch = int(state["global_step"]), int(state["epoch"]), int(state["step_in_epoch"])
    assert 0 < step < total_steps, state
    said = re.search(r"resuming from (\S+) \(global step (\d+); epoch (\d+), step (\d+)\)", stdout)
    assert said, stdout[-3000:]
    assert (Path(said.group(1)).name, int(said.group(2)), int(said.group(3)), int(said.group(4))) == (
        f"ckpt-{step}", step, epoch + 1, in_epoch)
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/\d+", stdout, re.M)]
    assert epochs and epochs[0] == epoch + 1, epochs  # no earlier epoch is trained again
    if in_epoch:
        assert re.search(rf"^Epoch {epoch + 1}/\d+ \(resuming at step {in_epoch + 1}\)", stdout, re.M), stdout[-3000:]
    logged = logged_steps(event_files(out) - events_before)
    assert logged == list(range(step + 1, total_steps + 1)), (logged, state)


def run_in_process(args: Sequence[str]) -> subprocess.CompletedProcess:
    """conftest.run_in_process (the script's command line `args` parsed and run by its runner in this process, under
    the command line's error handling), with its output captured without capsys (this also serves module
    fixtures)."""
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        done = conftest.run_in_process(args)
    return subprocess.CompletedProcess(list(args), done.returncode, stdout.getvalue(), stderr.getvalue())
