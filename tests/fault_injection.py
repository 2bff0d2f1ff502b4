"""Run an entry point with a fault injected at an exact training step or phase (for the preemption tests).

    python tests/fault_injection.py FAULT SCRIPT --flag ...            one run, the fault injected
    python tests/fault_injection.py --matrix BASE CHAINS SCRIPT --flag=...{out}...
                                                                        the phase matrix, in one process

Faults:
- kill_after_step=N, sigterm_after_step=N: SIGKILL or SIGTERM after training step N (Trainer.step_hooks);
- kill_during_save=N: SIGKILL while the checkpoint of step N is being saved (TrainingCheckpointer._write_state);
- kill_at=PHASE[@K], term_at=PHASE[@K]: SIGKILL or SIGTERM when the run enters PHASE for the K-th time (default
  1; lifecycle.PHASE_HOOKS; `_` stands for a space: between_epochs, feature_cache, prediction_written);
- enospc_at=GLOB[@K], erofs_at=GLOB[@K]: the K-th write of a path matching GLOB fails as on a full disk or a
  read-only file system (io_utils.WRITE_HOOKS).

--matrix runs SCRIPT once uninterrupted into BASE/reference, then each chain (CHAINS: chains separated by
commas, the faults of a chain by `+`) into BASE/chain-I: the same command once with each fault of the chain in
turn, each run continuing what the one before left (as a job preempted again and again), then once more as it
is. One process for all, so the suite pays TensorFlow's start-up once: a SIGKILL is simulated by an exception
(BaseException, so no `except Exception` stops it; cleanup in `finally` blocks runs, which a real SIGKILL
skips: the real-signal tests cover that), a SIGTERM is a real signal to this process. BASE/matrix.json records
each chain's faults and exit statuses (-9 for a simulated SIGKILL; the last is the run without a fault).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import runpy
import signal
import sys
import time
from typing import Callable, List


class SimulatedKill(BaseException):
    """A SIGKILL inside the --matrix process: the run stops where it is."""


def _signal_at(step: int, signum: int, simulated: bool = False):
    def hook(global_step: int) -> None:
        if global_step == step:
            if simulated and signum == signal.SIGKILL:
                raise SimulatedKill()
            os.kill(os.getpid(), signum)

    return hook


def _nth(target: str, matches: Callable[[str], bool], action: Callable[[str], None]) -> Callable[[str], None]:
    """A hook that calls `action` the K-th time its argument matches (target 'X@K'; K defaults to 1)."""
    name, _, count = target.partition("@")
    remaining = [int(count or 1)]

    def hook(value: str) -> None:
        if matches(name, value):
            remaining[0] -= 1
            if remaining[0] == 0:
                action(value)

    return hook


def _stop(signum: int, simulated: bool) -> Callable[[str], None]:
    def action(_: str) -> None:
        if simulated and signum == signal.SIGKILL:
            raise SimulatedKill()
        os.kill(os.getpid(), signum)

    return action


def _fail_write(number: int) -> Callable[[str], None]:
    def action(path: str) -> None:
        raise OSError(number, os.strerror(number), path)

    return action


def install(fault: str, simulated: bool = False) -> Callable[[], None]:
    """Install the fault `KIND=ARG` (see the module's docstring); returns a function that removes it."""
    from bert_tf import io_utils, lifecycle  # training and resume (TensorFlow) only for their faults

    kind, _, arg = fault.partition("=")
    if kind in ("kill_after_step", "sigterm_after_step"):
        from bert_tf import training

        signum = signal.SIGKILL if kind == "kill_after_step" else signal.SIGTERM
        original_init = training.Trainer.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.step_hooks.append(_signal_at(int(arg), signum, simulated))

        training.Trainer.__init__ = init
        return lambda: setattr(training.Trainer, "__init__", original_init)
    if kind == "kill_during_save":
        from bert_tf import resume

        original_write = resume.TrainingCheckpointer._write_state

        def write_state(self, prefix, state):
            if int(state["global_step"]) == int(arg):
                os.kill(os.getpid(), signal.SIGKILL)
            original_write(self, prefix, state)

        resume.TrainingCheckpointer._write_state = write_state
        return lambda: setattr(resume.TrainingCheckpointer, "_write_state", original_write)
    if kind in ("kill_at", "term_at"):
        signum = signal.SIGKILL if kind == "kill_at" else signal.SIGTERM
        hooks, hook = lifecycle.PHASE_HOOKS, _nth(arg.replace("_", " "), str.__eq__, _stop(signum, simulated))
    elif kind in ("enospc_at", "erofs_at"):
        number = errno.ENOSPC if kind == "enospc_at" else errno.EROFS
        hooks, hook = io_utils.WRITE_HOOKS, _nth(arg, lambda pattern, path: fnmatch.fnmatch(path, pattern),
                                                 _fail_write(number))
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    hooks.append(hook)
    return lambda: hooks.remove(hook)


def run_matrix(base: str, chains: List[List[str]], script: str, args: List[str]) -> None:
    """The --matrix mode (see the module's docstring)."""
    from absl import flags

    sys.path[0] = os.path.dirname(os.path.abspath(script))
    main = runpy.run_path(script, run_name="bert_tf_fault_matrix")["main"]

    def run(out: str, fault: str = "") -> int:
        argv = [script] + [a.replace("{out}", out) for a in args]
        sys.argv = argv
        flags.FLAGS.unparse_flags()
        flags.FLAGS(argv)
        remove = install(fault, simulated=True) if fault else (lambda: None)
        try:
            main(argv[:1])
            return 0
        except SystemExit as stop:
            return int(stop.code or 0)
        except SimulatedKill:
            return -int(signal.SIGKILL)
        finally:
            remove()

    results = {"reference": {"faults": [], "statuses": [run(os.path.join(base, "reference"))]}}
    for i, chain in enumerate(chains):
        out, started = os.path.join(base, f"chain-{i}"), time.process_time()
        statuses = [run(out, fault) for fault in chain] + [run(out)]
        results[f"chain-{i}"] = {"faults": chain, "statuses": statuses}
        print(f"fault matrix: {' -> '.join(chain)} -> done: {statuses} ({time.process_time() - started:.1f} s CPU)",
              file=sys.stderr, flush=True)
    with open(os.path.join(base, "matrix.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


def main() -> None:
    """One run with the fault of argv[1], or the matrix (--matrix BASE FAULTS SCRIPT ARGS...)."""
    if sys.argv[1] == "--matrix":
        base, chains, script, *args = sys.argv[2:]
        run_matrix(base, [chain.split("+") for chain in chains.split(",")], script, args)
        return
    fault, script, *args = sys.argv[1:]
    install(fault)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
