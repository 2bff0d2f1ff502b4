"""bench/gpu_check.sh --dry_run: every step of the GPU check runs at toy size on the CPU and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import gpu_check  # noqa: E402


def test_peak_is_found_by_gpu_name_and_can_be_overridden():
    assert gpu_check.peak_for(["NVIDIA H200"], None) == 989.0
    assert gpu_check.peak_for(["NVIDIA H100 PCIe"], None) == 756.0
    assert gpu_check.peak_for(["Tesla V100-SXM2-32GB"], None) == 125.0
    assert gpu_check.peak_for(["Mystery GPU"], None) is None
    assert gpu_check.peak_for(["NVIDIA H200"], 500.0) == 500.0


def test_step_settings_cover_every_precision_with_and_without_xla():
    settings = gpu_check.step_settings([128, 256])
    combos = {(s["seq_len"], s["precision_name"], s["use_xla"]) for s in settings}
    assert len(combos) == len(settings) == 12
    assert {s["amp_dtype"] for s in settings if s["use_amp"]} == {"float16", "bfloat16"}


def test_section_replaces_only_itself(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nCPU figures.\n", encoding="utf-8")
    gpu_check.write_section(str(path), f"{gpu_check.BEGIN}\nfirst\n{gpu_check.END}\n")
    gpu_check.write_section(str(path), f"{gpu_check.BEGIN}\nsecond\n{gpu_check.END}\n")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nCPU figures.\n") and "second" in text and "first" not in text
    assert text.count(gpu_check.BEGIN) == 1


def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    if not (ROOT.parent / "shared" / "data" / "bc5cdr_chem").is_dir():
        pytest.skip("../shared/data is absent: the NER step needs BC5CDR")
    results = tmp_path / "RESULTS.md"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry_run", "--work_dir",
                           str(tmp_path / "work"), "--results", str(results)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    for heading in ("## GPU check (dry run", "### Training step", "### NER epoch", "### Prediction",
                    "### Inference engine (ONNX Runtime", "### Verdicts"):
        assert heading in text
    assert "| 16 | float32 | yes |" in text and "| 16 | bfloat16 | no |" in text
    assert "devel F1" in text and "examples/s" in text
    assert "matches one replica" in text
    assert "- onnxruntime float32 on the CPU:" in text and "labels agree" in text  # the engine step ran
    assert "onnxruntime float16: skipped: --inference_precision=float16 runs on a CUDA GPU" in text
    assert not (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8").count("dry run on the CPU")
