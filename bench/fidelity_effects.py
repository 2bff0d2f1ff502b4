"""How much the published thresholds' input changes: blocklist entries and predicted labels that differ between
the published setting (raw softmax, float32 model) and calibrated probabilities (--apply_temperature) or mixed
precision (--use_amp).

    python bench/fidelity_effects.py MODEL_DIR CONTEXTS_DIR OUT_DIR [--max_seq_length 64] [--amp_dtype bfloat16]

MODEL_DIR: a classifier saved by run_classifier.py --do_train (with --calibrate, the default, so that it has a
fitted temperature), e.g. runs/demo_pipeline/classifier/model; CONTEXTS_DIR: tagger context shards named
TYPE-contexts-w100-NNN.tsv, e.g. runs/demo_pipeline/contexts. Each setting predicts every shard in one process,
then builds the blocklists (python -m bert_tf.classifier.blocklists pipeline) from TYPE-predictions folders of
its shards. Prints and writes OUT_DIR/effects.json: per setting against raw float32, the predicted labels that
differ, the largest probability difference, and the auto_local.tsv / auto_global.tsv lines only one side has.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ("ggp", "che", "org", "dis")
LISTS = ("auto_local.tsv", "auto_global.tsv")


def settings(amp_dtype: str) -> Dict[str, List[str]]:
    """The run_classifier.py flags of each setting; "raw" is the published one."""
    return {"raw": [], "calibrated": ["--apply_temperature"], "amp": ["--use_amp", f"--amp_dtype={amp_dtype}"]}


def predict(model: str, contexts: str, out: str, flags: List[str], max_seq_length: int) -> float:
    """Predict every shard into OUT/all (shard id: the file stem); returns the seconds it took."""
    started = time.time()
    command = [sys.executable, os.path.join(ROOT, "run_classifier.py"), "--do_predict", f"--bert_model={model}",
               f"--output_dir={out}/job", f"--predict_file={contexts}", f"--predict_output_dir={out}/all",
               "--shard_id=stem", f"--max_seq_length={max_seq_length}", "--predict_batch_size=64",
               "--verbose=false", *flags]
    subprocess.run(command, check=True, cwd=ROOT)
    return time.time() - started


def blocklists(out: str) -> None:
    """RUN_DIR/TYPE-predictions from the shards of each type, then the blocklists pipeline into OUT/lists."""
    for type_ in TYPES:
        folder = os.path.join(out, "run", f"{type_}-predictions")
        os.makedirs(folder, exist_ok=True)
        for path in glob.glob(os.path.join(out, "all", f"output_with_probabilities_{type_}-contexts-*.tsv")):
            shutil.copy(path, folder)
    subprocess.run([sys.executable, "-m", "bert_tf.classifier.blocklists", "pipeline", "--run_dir",
                    os.path.join(out, "run"), "--output_dir", os.path.join(out, "lists")], check=True, cwd=ROOT)


def rows(out: str) -> Dict[str, List[str]]:
    """Prediction file name -> its rows (header included)."""
    return {os.path.basename(p): open(p, encoding="utf-8").read().splitlines()
            for p in sorted(glob.glob(os.path.join(out, "all", "output_with_probabilities_*.tsv")))}


def compare_predictions(base: Dict[str, List[str]], other: Dict[str, List[str]]) -> Dict[str, float]:
    """Predicted labels that differ and the largest probability difference, over every row."""
    flipped, largest, total = 0, 0.0, 0
    for name, lines in base.items():
        for a, b in zip(lines[1:], other[name][1:]):
            x, y = a.split("\t"), b.split("\t")
            total += 1
            flipped += x[6] != y[6]
            largest = max(largest, max(abs(float(p) - float(q)) for p, q in zip(x[7:], y[7:])))
    return {"rows": total, "labels_flipped": flipped, "max_probability_difference": largest}


def list_lines(out: str, name: str) -> Set[str]:
    """The lines of one blocklist file."""
    with open(os.path.join(out, "lists", name), encoding="utf-8") as f:
        return set(f.read().splitlines())


def compare_lists(base: str, other: str) -> Dict[str, Dict[str, int]]:
    """Per list file: its size in each setting and the lines only one of them has."""
    result = {}
    for name in LISTS:
        a, b = list_lines(base, name), list_lines(other, name)
        result[name] = {"raw": len(a), "other": len(b), "only_raw": len(a - b), "only_other": len(b - a)}
    return result


def main() -> None:
    """Run the three settings and print the differences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("contexts")
    parser.add_argument("out")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--amp_dtype", default="bfloat16")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    seconds = {}
    for name, flags in settings(args.amp_dtype).items():
        seconds[name] = predict(args.model, args.contexts, os.path.join(args.out, name), flags, args.max_seq_length)
        blocklists(os.path.join(args.out, name))
    raw = os.path.join(args.out, "raw")
    effects = {"model": os.path.abspath(args.model), "seconds": seconds}
    for name in ("calibrated", "amp"):
        other = os.path.join(args.out, name)
        effects[name] = {"predictions": compare_predictions(rows(raw), rows(other)),
                         "blocklists": compare_lists(raw, other)}
    with open(os.path.join(args.out, "effects.json"), "w", encoding="utf-8") as f:
        json.dump(effects, f, indent=2)
    print(json.dumps(effects, indent=2))


if __name__ == "__main__":
    main()
