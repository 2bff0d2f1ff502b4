"""run_classifier.py end to end on a tiny model: --pooling, --class_weights and --calibrate reach the saved
model, and a run that never beats the majority baseline says so (warnings, last line, eval_results.json)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_script

from bert_tf import reports

ROWS = ["{d}\tT{i}\tche\thello alice went to \tx\t and met bob .\n",
        "{d}\tT{i}\tdis\tthe corp at \ty\t visited rome .\n",
        "{d}\tT{i}\tout\tcarol and dave \tz\t in oslo at lima .\n"]


def test_a_run_that_never_beats_the_baseline_says_so(tmp_path: Path, tiny_checkpoint: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("".join(ROWS[i % 3].format(d=i, i=i) for i in range(24)))
    # A dev set of one label: the majority baseline is perfect there, so no model can beat it.
    (data / "dev.tsv").write_text("".join(ROWS[2].format(d=100 + i, i=i) for i in range(6)))
    (data / "test.tsv").write_text(ROWS[0].format(d=200, i=0))
    weights = tmp_path / "weights.tsv"
    weights.write_text("dis\t2\n")
    out = tmp_path / "out"
    process = run_script(["run_classifier.py", f"--bert_model={tiny_checkpoint}", f"--data_dir={data}",
                          f"--output_dir={out}", "--do_train", "--do_eval", "--max_seq_length=16",
                          "--num_train_epochs=2", "--train_batch_size=8", "--pooling=mention",
                          "--replace_span=[unused1]", f"--class_weights={weights}", "--verbose=false"])
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stdout.strip().splitlines()
    assert sum("WARNING: the model may have collapsed" in line for line in lines) == 2  # after each validation
    assert "collapsed" in lines[-1] and "--pooling=mention" in lines[-1]
    assert "pooling mention; class weights " + f"{weights}: che 1, dis 2, out 1" in process.stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["collapsed"] is True and results["majority_baseline"]["accuracy"] == 1.0
    assert "COLLAPSED" in (out / "eval_report.txt").read_text()
    published = (out / "eval_results.txt").read_text().splitlines()  # Google/NVIDIA form, logged as TF1 did
    assert f"eval_accuracy = {reports.published_value(results['accuracy'])}" in published
    assert f"INFO:tensorflow:  {published[0]}" in process.stderr.splitlines()
    meta = json.loads((out / "model" / "bert_tf_model.json").read_text())
    assert meta["pooling"] == "mention" and meta["collapsed"] is True
    assert meta["fitted_temperature"] == results["calibration"]["temperature"] == meta["calibration"]["temperature"]
    assert meta["temperature"] == 1.0  # recorded, not applied without --apply_temperature
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["flags"]["class_weights"] == str(weights) and run_config["flags"]["pooling"] == "mention"
