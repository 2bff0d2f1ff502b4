"""report.html: every section present, built from the files of an output folder, self-contained (no
network reference, images as data URIs, no scripts), and rendered by a real headless browser when one is
installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bert_tf import html_report, reports
from conftest import check_png

HISTORY = [
    {"epoch": 0.5, "step": 5, "split": "val", "end_of_epoch": False, "loss": 0.9, "accuracy": 0.6, "f1": 0.41},
    {"epoch": 1.0, "step": 10, "split": "val", "end_of_epoch": True, "loss": 0.7, "accuracy": 0.7, "f1": 0.77},
    {"epoch": 1.0, "step": 10, "split": "train", "end_of_epoch": True, "loss": 0.8, "accuracy": 0.65, "f1": 0.5,
     "learning_rate": 1e-5, "seconds": 4.0},
    {"epoch": 2.0, "step": 20, "split": "val", "end_of_epoch": True, "loss": 0.75, "accuracy": 0.72, "f1": 0.7},
    {"epoch": 2.0, "step": 20, "split": "train", "end_of_epoch": True, "loss": 0.5, "accuracy": 0.8, "f1": 0.6,
     "learning_rate": 0.0, "seconds": 5.0},
]


def make_run_folder(out: Path) -> Path:
    """An output folder as a classifier run leaves it."""
    out.mkdir()
    (out / "run_config.json").write_text(json.dumps({"flags": {"learning_rate": 5e-6, "seed": 42,
                                                               "bert_model": "/models/<biobert>"}}))
    html_report.write_run_summary(str(out), "bert-tf consensus classifier",
                                  {"data": "train 200, dev 40 examples", "devices": "CPU",
                                   html_report.EXAMPLES_PER_EPOCH: 200})
    reports.write_history_csv(HISTORY, str(out / "history.csv"))
    reports.plot_all_history(HISTORY, str(out), ("loss", "accuracy", "f1"))
    labels, matrix = ["che", "dis", "out"], [[10, 1, 2], [0, 8, 3], [1, 1, 14]]
    (out / "eval_results.json").write_text(json.dumps({
        "accuracy": 0.8, "loss": 0.5, "labels": labels, "confusion_matrix": matrix,
        "macro": {"precision": 0.8, "recall": 0.79, "f1": 0.795, "support": 40},
        "per_class": {"che": {"precision": 0.91, "recall": 0.77, "f1": 0.83, "support": 13},
                      "dis": {"precision": 0.8, "recall": 0.73, "f1": 0.76, "support": 11},
                      "out": {"precision": 0.74, "recall": 0.88, "f1": 0.8, "support": 16}}}))
    reports.plot_confusion_matrix(matrix, labels, str(out / "confusion_matrix.png"))
    return out


def check_self_contained(text: str) -> None:
    assert "http" not in text.lower() and "<script" not in text.lower() and "@import" not in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"url\(", text) and not re.search(r'href="(?!#)', text)


def test_run_report_has_every_section_and_no_external_reference(tmp_path: Path) -> None:
    out = make_run_folder(tmp_path / "run")
    text = Path(html_report.write_run_report(str(out))).read_text(encoding="utf-8")
    for section_id in ("flags", "data", "curves", "results", "confusion", "timings", "machine"):
        assert f'<section id="{section_id}">' in text, section_id
    check_self_contained(text)
    assert len(re.findall(r'src="data:image/png', text)) == 4  # loss, accuracy, f1, confusion matrix
    assert "Best validation point: f1 = 0.7700 at epoch 1.0 (step 10)" in text
    assert "<tr class=best><td" in text and text.count("class=best") == 1
    assert "/models/&lt;biobert&gt;" in text  # escaped
    assert "train 200, dev 40 examples" in text and ">che<" in text and ">0.8300<" in text
    assert ">50.0000<" in text and ">40.0000<" in text  # examples per second: 200 / 4 s and 200 / 5 s
    assert "Training time: 9.0 s over 2 epoch(s)." in text
    assert "tensorflow" in text and "keras-hub" in text and "python" in text
    assert "@media print" in text and 'name="viewport"' in text


def test_report_of_a_sparse_folder_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "eval_results.json").write_text(json.dumps({"accuracy": 1.0, "labels": ["a", "b"],
                                                            "confusion_matrix": [[2, 0], [0, 3]]}))
    text = html_report.build_run_report(str(tmp_path))
    assert "run_config.json not found" in text and "no plots found" in text and "no timings recorded" in text
    assert "gold \\ predicted" in text  # the matrix as a table when there is no plot
    assert "this is where the report was made" in text


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return ""


@pytest.mark.parametrize("width", [390, 1400])
def test_headless_browser_renders_the_report(tmp_path: Path, width: int) -> None:
    browser = _browser()
    if not browser:
        pytest.skip("no chromium / google-chrome installed for a headless rendering check")
    out = make_run_folder(tmp_path / "run")
    report = html_report.write_run_report(str(out))
    shot = tmp_path / "shot.png"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},2400", f"--screenshot={shot}", f"file://{report}"],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    assert check_png(shot)[0] == width


def test_grid_report_writes_a_self_contained_page(tmp_path: Path) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import grid_report

    runs = tmp_path / "runs"
    for lr, seed, f1 in (("1e-5", "1", 0.8), ("1e-5", "2", 0.82), ("2e-5", "1", 0.9), ("3e-5", "1", None)):
        run = runs / "biobert" / "grid" / f"lr{lr}_s{seed}"
        run.mkdir(parents=True)
        (run / "run.flags").write_text(f"--max_seq_length=128\n--train_batch_size=32\n--learning_rate={lr}\n"
                                       f"--num_train_epochs=2\n--seed={seed}\n")
        if f1 is not None:
            (run / "eval_results.json").write_text(json.dumps({"macro": {"f1": f1}, "accuracy": f1, "loss": 1 - f1}))
    grid_report.report(str(runs))
    text = (runs / "report.html").read_text(encoding="utf-8")
    check_self_contained(text)
    best_row = re.search(r"<tr class=best>(.*?)</tr>", text).group(1)
    assert ">2e-5<" in best_row and ">0.900000<" in best_row
    assert "lr3e-5_s1" in text and "no eval_results.json" in text  # the failed run is listed
    assert '<section id="machine">' in text
