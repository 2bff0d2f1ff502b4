"""Run an entry point with a fault injected at an exact training step (for the resume tests).

    python tests/fault_injection.py kill_after_step=10 run_ner.py --flag ...

Faults: kill_after_step=N (SIGKILL after training step N), sigterm_after_step=N (SIGTERM after step N),
kill_during_save=N (SIGKILL while the checkpoint of step N is being saved, before it is complete). They go
through the library's seams: Trainer.step_hooks and TrainingCheckpointer._write_state.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys


def _signal_at(step: int, signum: int):
    def hook(global_step: int) -> None:
        if global_step == step:
            os.kill(os.getpid(), signum)

    return hook


def install(fault: str) -> None:
    """Install the fault `KIND=STEP` into the training loop or the checkpointer."""
    from bert_tf import resume, training

    kind, _, step_text = fault.partition("=")
    step = int(step_text)
    if kind in ("kill_after_step", "sigterm_after_step"):
        signum = signal.SIGKILL if kind == "kill_after_step" else signal.SIGTERM
        original_init = training.Trainer.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.step_hooks.append(_signal_at(step, signum))

        training.Trainer.__init__ = init
    elif kind == "kill_during_save":
        original_write = resume.TrainingCheckpointer._write_state

        def write_state(self, prefix, state):
            if int(state["global_step"]) == step:
                os.kill(os.getpid(), signal.SIGKILL)
            original_write(self, prefix, state)

        resume.TrainingCheckpointer._write_state = write_state
    else:
        raise SystemExit(f"unknown fault {fault!r}")


def main() -> None:
    """Install the fault named by argv[1], then run the script argv[2] with the remaining arguments."""
    fault, script, *args = sys.argv[1:]
    install(fault)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
