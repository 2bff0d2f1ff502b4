"""The grid search end to end with the real run_classifier.py: one run, then the grid again with a second
seed, which skips the finished run and trains the new one from the shared feature cache.

(tests/test_grid.py runs the full 2 x 2 x 2 grid with a fake runner whose scores are known.)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import check_png

ROOT = Path(__file__).resolve().parent.parent


def run_grid(data: Path, out: Path, tiny_checkpoint: str, seeds: str) -> subprocess.CompletedProcess:
    """The grid script with one learning rate, one epoch and `seeds`, run locally."""
    env = {k: v for k, v in os.environ.items() if k not in ("MODELS", "EPOCHS", "SEEDS")}
    command = ["bash", str(ROOT / "scripts" / "run_finetuning_grid.sh"), "--models", f"tiny:{tiny_checkpoint}:16",
               "--batch_sizes", "32", "--learning_rates", "1e-3", "--epochs", "1", "--seeds", seeds,
               "--data_dir", str(data), "--out_dir", str(out), "--launcher=local", "--python", sys.executable,
               "--extra_flags", "--labels_file=" + str(ROOT / "data" / "demo" / "consensus" / "labels.txt")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")
def test_real_grid_resumes_shares_the_cache_and_reports(tmp_path, tiny_checkpoint):
    data = tmp_path / "data"
    data.mkdir()
    for split, rows in (("train", 160), ("dev", 60)):  # a slice of the demo set keeps the runs short
        lines = (ROOT / "data" / "demo" / "consensus" / f"{'train' if split == 'train' else 'dev'}.tsv"
                 ).read_text(encoding="utf-8").splitlines(keepends=True)[:rows]
        (data / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "runs"
    run_grid(data, out, tiny_checkpoint, "1")
    first_log = next(out.glob("tiny/*/rep1/run.log")).read_text()
    assert first_log.count("building feature cache") == 2  # train and dev
    again = run_grid(data, out, tiny_checkpoint, "1 2")
    assert "1 finished (skipped)" in again.stdout
    second_log = next(out.glob("tiny/*/rep2/run.log")).read_text()
    assert "building feature cache" not in second_log and second_log.count("reusing feature cache") >= 2
    assert len(sorted(out.glob("tiny/*/rep*/eval_results.json"))) == 2
    assert len([p for p in (out / "feature_cache").iterdir() if not p.name.startswith(".")]) == 2  # train, dev

    report = subprocess.run([sys.executable, str(ROOT / "scripts" / "grid_report.py"), str(out),
                             "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert len(rows) == 1 and rows[0]["n"] == "2"
    for row in rows:
        results = [json.loads(p.read_text()) for p in out.glob(
            f"tiny/bs32_lr{row['learning_rate']}_ep{row['num_train_epochs']}/rep*/eval_results.json")]
        accuracy = statistics.mean(r["accuracy"] for r in results)
        assert float(row["accuracy_mean"]) == pytest.approx(accuracy, abs=5e-7)  # the ranking metric (micro F1)
        assert float(row["macro_f1_mean"]) == pytest.approx(statistics.mean(r["macro"]["f1"] for r in results),
                                                            abs=5e-7)
    check_png(tmp_path / "report_heatmap.png")
