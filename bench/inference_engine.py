"""Prediction engines compared on real data: TensorFlow float32 (run_classifier.py's default), ONNX Runtime float32
and ONNX Runtime int8, one run for the whole table.

    python bench/inference_engine.py [--max_seq_length 256] [--repeats 5] [--work_dir DIR] [--out FILE.json]

1. Fine-tunes all-MiniLM-L6-v2 (pooling mention) on the first --train_rows of the real consensus examples
   (../shared/data/consensus_example/examples.tsv) at --train_length, once (kept in --work_dir for reruns).
2. Accuracy and macro-F1 of each engine on the other examples at --max_seq_length, each predicted by
   run_classifier.py --do_predict --inference_engine=... (the real path: feature cache, writer, files).
3. Speed: examples/s of each engine's predict loop (`Trainer.predict` / `OnnxPredictor.predict`) over the same
   batches of --timed_rows held-out examples, the engines interleaved (A B C A B C ...) --repeats times so that
   other processes' load falls on all of them alike; best and median repeat.
4. The demo corpus (data/demo/consensus/test.tsv as the tagger's output, 3 shards a type, as
   scripts/demo_published_pipeline.sh lays it out) predicted by each engine (one run over the 12 shards, their
   files then sorted into TYPE-predictions folders), then the blocklists pipeline: the
   largest probability change against TensorFlow float32 and the number of blocklist entries (lines of
   auto_local.tsv and auto_global.tsv) that differ from TensorFlow float32's.
5. Where ONNX Runtime spends its time: each operator type's share of one profiled pass over the timed examples,
   float32 and int8.
6. The float32 tf.matmul rate (2048^2) before and after, and the load averages.
Writes JSON (default bench/inference_engine.json) and prints it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import time
from typing import Any, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import (CONSENSUS_EXAMPLES, CONSENSUS_LABELS, DEMO_TEST, cpu_model, load_average, log,  # noqa: E402
                          minilm_dir, package_versions, require_files, write_demo_corpus)

ENGINES = (("tensorflow", "float32"), ("onnxruntime", "float32"), ("onnxruntime", "int8"))
BLOCKLISTS = ("auto_local.tsv", "auto_global.tsv")


def name_of(engine: Tuple[str, str]) -> str:
    """'tensorflow float32', 'onnxruntime int8', ..."""
    return " ".join(engine)


def split_examples(work: str, train_rows: int) -> Tuple[str, str]:
    """data/train.tsv and dev.tsv (first train_rows rows; a tenth of them as dev) and test.tsv (the rest)."""
    lines = open(CONSENSUS_EXAMPLES, encoding="utf-8").read().splitlines(keepends=True)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    dev = train_rows // 10
    for name, rows in (("train", lines[:train_rows - dev]), ("dev", lines[train_rows - dev:train_rows]),
                       ("test", lines[train_rows:])):
        with open(os.path.join(data, f"{name}.tsv"), "w", encoding="utf-8", newline="") as f:
            f.writelines(rows)
    return data, os.path.join(data, "test.tsv")


def fine_tune(work: str, data: str, length: int, epochs: float, seed: int) -> Tuple[str, float]:
    """A MiniLM classifier fine-tuned on data/train.tsv (kept for reruns); its folder and the seconds it took."""
    from bert_tf.classifier import run
    from bert_tf.classifier.config import ClassifierConfig

    out = os.path.join(work, f"classifier_len{length}_ep{epochs:g}_seed{seed}")
    if os.path.isfile(os.path.join(out, "model", "bert_tf_model.json")):
        return os.path.join(out, "model"), 0.0
    started = time.time()
    run.train(ClassifierConfig(bert_model=minilm_dir(), data_dir=data, output_dir=out, labels_file=CONSENSUS_LABELS,
                               max_seq_length=length, train_batch_size=16, learning_rate=1e-4,
                               num_train_epochs=epochs, pooling="mention", seed=seed, verbose=False,
                               overwrite_output_dir=True))
    return os.path.join(out, "model"), time.time() - started


def predict_file(model: str, engine: Tuple[str, str], predict: str, out: str, length: int, work: str) -> None:
    """run_classifier.py --do_predict of `predict` (a file or a corpus) into `out`; the run's folder (and its ONNX
    export) is one per engine under `work`."""
    from bert_tf.classifier import run
    from bert_tf.classifier.config import ClassifierConfig

    run.predict(ClassifierConfig(bert_model=model, output_dir=os.path.join(work, "run_" + "_".join(engine)),
                                 predict_file=predict, predict_output_dir=out, max_seq_length=length,
                                 predict_batch_size=32, verbose=False, overwrite_output_dir=True,
                                 inference_engine=engine[0], inference_precision=engine[1]))


def read_probabilities(path: str) -> Tuple[List[str], List[str], List[List[float]]]:
    """Gold labels, predicted labels and probabilities of an output_with_probabilities file."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[2] for r in rows[1:]], [r[6] for r in rows[1:]], [[float(x) for x in r[7:]] for r in rows[1:]]


def quality(gold: List[str], predicted: List[str], labels: List[str]) -> Dict[str, float]:
    """Accuracy and macro-F1 (over the labels) in percent."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": 100 * accuracy_score(gold, predicted),
            "macro_f1": 100 * f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)}


def accuracy_case(model: str, test: str, work: str, length: int) -> Dict[str, Any]:
    """Each engine's accuracy and macro-F1 on the held-out examples, and its largest probability change and
    label changes against TensorFlow float32."""
    labels = open(CONSENSUS_LABELS, encoding="utf-8").read().split()
    results, reference = {}, None
    for engine in ENGINES:
        out = os.path.join(work, "accuracy", name_of(engine).replace(" ", "_"))
        predict_file(model, engine, test, out, length, work)
        gold, predicted, probs = read_probabilities(os.path.join(out, "output_with_probabilities.tsv"))
        reference = reference or (predicted, probs)
        results[name_of(engine)] = {**quality(gold, predicted, labels), "examples": len(gold),
                                    **changes(reference, (predicted, probs))}
    return results


def changes(reference: Tuple[List[str], List[List[float]]], other: Tuple[List[str], List[List[float]]]) -> Dict:
    """The largest absolute probability change and the number of predicted labels that differ."""
    largest = max(abs(a - b) for ra, rb in zip(reference[1], other[1]) for a, b in zip(ra, rb))
    return {"max_probability_change": largest,
            "labels_changed": sum(a != b for a, b in zip(reference[0], other[0]))}


def feature_batches(task, path: str, length: int, batch: int, work: str) -> Tuple[Any, int]:
    """The feature batches of a consensus file for `task` (cached in memory, read once) and the example count."""
    from bert_tf.classifier import feature_cache, inputs

    info = inputs.build_features(path, task.labels, "labels", task.tokenizer, length, None,
                                 os.path.join(work, "timed_cache"), check_labels=False)
    dataset = inputs.as_training_batches(feature_cache.cache_dataset(info, batch, shuffle=False, seed=0,
                                                                     with_index=True)).cache()
    for _ in dataset:  # read once: the timed passes read memory
        pass
    return dataset, info.num_examples


def interleaved_rates(runners: Dict[str, Any], dataset: Any, count: int, batch: int, repeats: int) -> Dict[str, Any]:
    """Examples/s of each runner's predict loop over `dataset` (`count` examples), the runners interleaved
    (A B C A B C ...) over `repeats` rounds after one warm-up batch each; best and median round, and each
    against the first runner."""
    steps = -(-count // batch)
    for runner in runners.values():  # warm-up: tracing, first allocations
        runner.predict(dataset.take(1), 1, lambda out: None)
    seconds: Dict[str, List[float]] = {name: [] for name in runners}
    for round_ in range(1, repeats + 1):
        for name, runner in runners.items():
            started = time.perf_counter()
            runner.predict(dataset, steps, lambda out: None)
            seconds[name].append(time.perf_counter() - started)
        log(f"round {round_}: " + ", ".join(f"{n} {count / s[-1]:.1f}/s" for n, s in seconds.items()))
    out = {name: {"examples_per_s_best": count / min(times), "examples_per_s_median": count / statistics.median(times),
                  "seconds_each_repeat": times} for name, times in seconds.items()}
    base = out[next(iter(runners))]
    for figures in out.values():
        figures["speedup_best"] = figures["examples_per_s_best"] / base["examples_per_s_best"]
        figures["speedup_median"] = figures["examples_per_s_median"] / base["examples_per_s_median"]
    return {"examples": count, "batch_size": batch, "repeats": repeats, "engines": out}


def speed_case(model_dir: str, test: str, work: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Examples/s of each engine's predict loop on the first --timed_rows held-out examples, interleaved."""
    from bert_tf import onnx_engine
    from bert_tf.checkpoints import load_saved_model
    from bert_tf.training import Trainer
    import tensorflow as tf

    task = load_saved_model(model_dir)
    head = os.path.join(work, "timed.tsv")
    with open(test, encoding="utf-8") as f, open(head, "w", encoding="utf-8") as g:
        g.writelines(f.readlines()[:args.timed_rows])
    dataset, count = feature_batches(task, head, args.max_seq_length, args.batch_size, work)
    runners = {"tensorflow float32": Trainer(task.model, None, tf.distribute.get_strategy(), verbose=False)}
    for engine in ENGINES[1:]:
        runners[name_of(engine)] = onnx_engine.predictor_for(task, engine[1], os.path.join(work, "onnx"), verbose=False)
    return interleaved_rates(runners, dataset, count, args.batch_size, args.repeats)


def profile_case(model_dir: str, work: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Where each ONNX Runtime precision spends its time: the share of each operator type in one profiled pass
    over the timed examples (ONNX Runtime's profiler, kernel times only)."""
    import collections
    import glob

    import onnxruntime

    from bert_tf import onnx_engine
    from bert_tf.checkpoints import load_saved_model

    task = load_saved_model(model_dir)
    dataset, count = feature_batches(task, os.path.join(work, "timed.tsv"), args.max_seq_length, args.batch_size,
                                     work)
    out = {}
    for _, precision in ENGINES[1:]:
        options = onnxruntime.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(work, f"profile_{precision}")
        path = glob.glob(os.path.join(work, "onnx", f"model-*-{precision}-v{onnx_engine.EXPORT_VERSION}.onnx"))[0]
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for batch in dataset.as_numpy_iterator():
            session.run(["logits"], {k: batch[k] for k in ("token_ids", "padding_mask", "segment_ids")})
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
        times: Dict[str, float] = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                times[event["args"]["op_name"]] += event["dur"]
        total = sum(times.values())
        out[precision] = {"kernel_seconds": total / 1e6, "examples": count,
                          "share_by_op": {op: t / total for op, t in sorted(times.items(), key=lambda kv: -kv[1])}}
    return out


def sort_by_type(folder: str, run_dir: str) -> None:
    """Move each shard's files (outputs and record) of a corpus predicted in one run into RUN_DIR/TYPE-predictions,
    where the blocklists pipeline reads them (as if each type had been predicted on its own)."""
    import re

    for name in os.listdir(folder):
        found = re.match(r"^(?:test_results|output_with_probabilities|shard_info)_(\w+)-contexts-w100-\d+\.", name)
        if found:
            target = os.path.join(run_dir, f"{found.group(1)}-predictions")
            os.makedirs(target, exist_ok=True)
            os.replace(os.path.join(folder, name), os.path.join(target, name))
            shutil.copy(os.path.join(folder, "prediction_info.json"), target)  # the run's settings, as per type


def demo_case(model: str, work: str, length: int) -> Dict[str, Any]:
    """Each engine on the demo corpus: the blocklists, and what changes against TensorFlow float32."""
    import glob

    from bert_tf.classifier import blocklists

    contexts = write_demo_corpus(os.path.join(work, "demo", "contexts"))
    results, reference = {}, None
    for engine in ENGINES:
        run_dir = os.path.join(work, "demo", name_of(engine).replace(" ", "_"))
        shutil.rmtree(run_dir, ignore_errors=True)
        predict_file(model, engine, contexts, os.path.join(run_dir, "all"), length, work)
        sort_by_type(os.path.join(run_dir, "all"), run_dir)
        lists = os.path.join(run_dir, "blocklists")
        if blocklists.main(["pipeline", "--run_dir", run_dir, "--output_dir", lists]) != 0:
            raise RuntimeError(f"the blocklists pipeline failed on {run_dir}")
        rows: Tuple[List[str], List[List[float]]] = ([], [])
        for path in sorted(glob.glob(os.path.join(run_dir, "*-predictions", "output_with_probabilities_*.tsv"))):
            _, predicted, probs = read_probabilities(path)
            rows[0].extend(predicted)
            rows[1].extend(probs)
        entries = {name: set(open(os.path.join(lists, name), encoding="utf-8").read().splitlines()) for name in BLOCKLISTS}
        reference = reference or (rows, entries)
        results[name_of(engine)] = {
            **changes(reference[0], rows), "examples": len(rows[0]),
            "blocklist_entries": {name: len(lines) for name, lines in entries.items()},
            "blocklist_entries_changed": sum(len(entries[n] ^ reference[1][n]) for n in BLOCKLISTS)}
    return results


def gemm() -> Dict[str, Any]:
    """The float32 2048^2 tf.matmul rate (bench.tf_step.gemm_rate)."""
    from bench.tf_step import gemm_rate

    return gemm_rate(2048, "float32")


def main() -> int:
    """Run every case; print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--train_rows", type=int, default=600)
    parser.add_argument("--train_length", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timed_rows", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated cases not to run: speed, accuracy, profile, demo")
    parser.add_argument("--work_dir", default="/tmp/bert_tf_bench_engine")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "inference_engine.json"))
    args = parser.parse_args()
    require_files(CONSENSUS_EXAMPLES, DEMO_TEST)
    skip = set(filter(None, args.skip.split(",")))
    started = time.time()
    result: Dict[str, Any] = {
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "versions": package_versions(["tensorflow", "onnxruntime", "onnx", "keras-hub"])},
        "load_before": load_average(), "args": vars(args), "gemm_before": gemm()}
    os.makedirs(args.work_dir, exist_ok=True)
    data, test = split_examples(args.work_dir, args.train_rows)
    log("fine-tuning MiniLM on the consensus examples")
    model, train_seconds = fine_tune(args.work_dir, data, args.train_length, args.epochs, args.seed)
    result["model"] = {"path": model, "train_rows": args.train_rows, "train_length": args.train_length,
                       "epochs": args.epochs, "train_seconds": train_seconds}
    for case, run_case in (("speed", lambda: speed_case(model, test, args.work_dir, args)),
                           ("accuracy", lambda: accuracy_case(model, test, args.work_dir, args.max_seq_length)),
                           ("profile", lambda: profile_case(model, args.work_dir, args)),
                           ("demo", lambda: demo_case(model, args.work_dir, args.max_seq_length))):
        if case in skip:
            continue
        log(f"case {case}")
        case_started = time.time()
        result[case] = {**run_case(), "load_after": load_average(), "case_seconds": time.time() - case_started}
        write_result(args.out, result)  # what is done so far survives a later failure
    result["gemm_after"] = gemm()
    result["load_after"] = load_average()
    result["total_seconds"] = time.time() - started
    print(json.dumps(result, indent=2))
    write_result(args.out, result)
    return 0


def write_result(path: str, result: Dict[str, Any]) -> None:
    """Write the JSON result."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
