"""A distilled student against its teacher on the real consensus examples and the demo corpus (issue 33, item 3).

    python bench/distill.py --work_dir=/tmp/distill_bench [--student_layers=2] [--json=bench/distill.json]

The 1,000 examples of ../shared/data/consensus_example are split by document (train/dev/test ~ 70/10/20 %).
Teacher: all-MiniLM-L6-v2 (6 layers) fine-tuned by run_classifier.py on train at max_seq_length 256 (a short
run). Student: --student_layers layers initialised from the teacher's, distilled by run_classifier.py
--do_train --distill_from on the demo corpus contexts (unlabeled) and train (labelled). Both then predict the
test split in one process, timed in turns (teacher, student, teacher, ...; the machine may be shared, so each
model's figure is the best of its turns), and give accuracy and macro F1 on test; both predict the demo corpus
(12 shards, as scripts/demo_published_pipeline.sh splits data/demo/consensus/test.tsv) and build its blocklists
(bench/fidelity_effects.py's steps): the largest probability change and the blocklist lines that differ. The
float32 2048^2 tf.matmul rate is measured before and after. A finished teacher or student in --work_dir is
reused (delete it to train again).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fidelity_effects  # noqa: E402
from bench.common import (CONSENSUS_EXAMPLES, CONSENSUS_LABELS, bert_forward_flops, cpu_model, load_average,  # noqa: E402
                          minilm_dir, write_demo_corpus)

LENGTH = 256


def split_by_document(source: str, target: Path) -> Path:
    """train/dev/test.tsv from the consensus examples, by document (sorted ids; every 10th document dev, the
    next two of every ten test, the rest train)."""
    lines = Path(source).read_bytes().decode("utf-8").splitlines(keepends=True)
    docs = sorted({line.split("\t", 1)[0] for line in lines})
    split_of = {d: "dev" if i % 10 == 0 else "test" if i % 10 in (1, 2) else "train" for i, d in enumerate(docs)}
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        chosen = [line for line in lines if split_of[line.split("\t", 1)[0]] == split]
        (target / f"{split}.tsv").write_text("".join(chosen), encoding="utf-8", newline="")
    return target


def demo_contexts(target: Path) -> Path:
    """The demo corpus as scripts/demo_published_pipeline.sh writes it (bench.common.write_demo_corpus)."""
    return Path(write_demo_corpus(str(target)))


def run_classifier(args: Sequence[str], log: Path) -> float:
    """Run run_classifier.py (its output to `log`); the seconds it took."""
    started = time.time()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.run([sys.executable, str(ROOT / "run_classifier.py"), *args], stdout=out,
                                 stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    if process.returncode != 0:
        raise RuntimeError(f"run_classifier.py failed ({process.returncode}); see {log}")
    return time.time() - started


def teacher_args(data: Path, out: Path, epochs: float) -> List[str]:
    """The teacher's fine-tuning command."""
    return [f"--bert_model={minilm_dir()}", f"--data_dir={data}", f"--output_dir={out}", "--do_train",
            f"--labels_file={CONSENSUS_LABELS}", f"--max_seq_length={LENGTH}", "--pooling=mention",
            "--train_batch_size=16", "--learning_rate=3e-4", f"--num_train_epochs={epochs}", "--seed=1",
            "--log_every=5", "--noresume", "--overwrite_output_dir"]


def student_data(data: Path, target: Path, every: int) -> Path:
    """The student's labelled data: train.tsv's every `every`-th row (all with 1) and dev.tsv."""
    target.mkdir(parents=True, exist_ok=True)
    rows = (data / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (target / "train.tsv").write_text("".join(rows[::every]), encoding="utf-8", newline="")
    (target / "dev.tsv").write_text((data / "dev.tsv").read_text(encoding="utf-8"), encoding="utf-8", newline="")
    return target


def student_args(teacher: Path, data: Path, contexts: Path, out: Path, layers: int, epochs: float) -> List[str]:
    """The student's distillation command."""
    return [f"--distill_from={teacher}", f"--student_layers={layers}", f"--unlabeled_contexts={contexts}",
            f"--data_dir={data}", f"--output_dir={out}", "--do_train", "--nocalibrate", "--train_batch_size=16",
            "--learning_rate=3e-4", f"--num_train_epochs={epochs}", "--seed=1", "--log_every=5", "--noresume",
            "--overwrite_output_dir"]


def trained(out: Path, args: List[str], log: Path) -> float:
    """Train unless `out` already holds a saved model; the seconds it took (0: reused)."""
    if (out / "model" / "bert_tf_model.json").is_file():
        return 0.0
    return run_classifier(args, log)


def gemm() -> float:
    """The float32 2048^2 tf.matmul rate, GFLOP/s (bench/tf_step.py)."""
    from bench.tf_step import gemm_rate

    return gemm_rate(2048, "float32")["flops"] / 1e9


def timed_accuracy(teacher: Path, student: Path, test: Path, rounds: int) -> Dict[str, Any]:
    """Both models on the test split in this process: examples/s (the best of `rounds` passes each, taken in turn;
    the first pass includes tracing), accuracy and macro F1 (from the last pass)."""
    from bert_tf import checkpoints, distribution
    from bert_tf.classifier import inference, inputs
    from bert_tf.classifier.metrics import classification_metrics
    from bert_tf.training import Trainer

    context = distribution.setup_run(0, False, "auto")
    models, infos = {}, {}
    for name, path in (("teacher", teacher), ("student", student)):
        task = checkpoints.load_saved_model(str(path))
        models[name] = (task, Trainer(task.model, None, context.strategy, verbose=False))
        infos[name] = inputs.build_features(str(test), task.labels, "labels", task.tokenizer, LENGTH,
                                            task.meta.get("replace_span"), str(path.parent / "bench_cache"))
    rates: Dict[str, List[float]] = {name: [] for name in models}
    figures: Dict[str, Any] = {}
    for _ in range(rounds):
        for name, (task, trainer) in models.items():
            started = time.perf_counter()
            probs, gold = inference.predict_probabilities(trainer, infos[name], 64)
            rates[name].append(infos[name].num_examples / (time.perf_counter() - started))
            metrics = classification_metrics(gold, probs.argmax(axis=1), task.labels, "out")
            flops = bert_forward_flops(LENGTH, task.backbone.num_layers, task.backbone.hidden_dim,
                                       task.backbone.intermediate_dim, len(task.labels))
            figures[name] = {"layers": task.backbone.num_layers, "examples_per_s": max(rates[name]),
                             "gflop_per_example": flops / 1e9, "model_gflops": flops * max(rates[name]) / 1e9,
                             "examples_per_s_passes": rates[name], "accuracy": metrics["accuracy"],
                             "macro_f1": metrics["macro"]["f1"], "test_examples": infos[name].num_examples}
            print(f"{name}: {rates[name][-1]:.2f} examples/s, accuracy {metrics['accuracy']:.4f}", flush=True)
    return figures


def demo_corpus(teacher: Path, student: Path, contexts: Path, work: Path) -> Dict[str, Any]:
    """Both models over the demo corpus and its blocklists (in WORK/demo/teacher and WORK/demo/STUDENT): what
    changes from teacher to student."""
    outs = {"teacher": work / "demo" / "teacher", "student": work / "demo" / student.name}
    for name, model in (("teacher", teacher), ("student", student)):
        if not (outs[name] / "lists" / "auto_local.tsv").is_file():
            fidelity_effects.predict(str(model / "model"), str(contexts), str(outs[name]),
                                     ["--overwrite_output_dir"], LENGTH)
            fidelity_effects.blocklists(str(outs[name]))
    base, other = str(outs["teacher"]), str(outs["student"])
    return {"predictions": fidelity_effects.compare_predictions(fidelity_effects.rows(base),
                                                                fidelity_effects.rows(other)),
            "lists": fidelity_effects.compare_lists(base, other)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--student_layers", type=int, default=2)
    parser.add_argument("--teacher_epochs", type=float, default=1.0)
    parser.add_argument("--student_epochs", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--student_train_every", type=int, default=1,
                        help="the student's labelled data: every N-th train row (a shorter run)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "distill.json"))
    args = parser.parse_args()
    started, work = time.time(), Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    result: Dict[str, Any] = {"command": " ".join(["python", "bench/distill.py"] + sys.argv[1:]),
                              "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
                              "load_before": load_average(), "gemm_gflops_before": gemm()}
    data = split_by_document(CONSENSUS_EXAMPLES, work / "data")
    contexts = demo_contexts(work / "contexts")
    teacher = work / "teacher"
    student = work / f"student{args.student_layers}_epochs{args.student_epochs:g}_every{args.student_train_every}"
    labelled = student_data(data, work / f"student_data_every{args.student_train_every}", args.student_train_every)
    result["teacher_train_seconds"] = trained(teacher, teacher_args(data, teacher, args.teacher_epochs),
                                              work / "teacher.log")
    result["student_train_seconds"] = trained(student, student_args(teacher, labelled, contexts, student,
                                                                    args.student_layers, args.student_epochs),
                                              student.with_suffix(".log"))
    result["settings"] = {"max_seq_length": LENGTH, "teacher_epochs": args.teacher_epochs,
                          "student_epochs": args.student_epochs, "student_layers": args.student_layers,
                          "teacher_command": "run_classifier.py " + " ".join(teacher_args(data, teacher,
                                                                                          args.teacher_epochs)),
                          "student_command": "run_classifier.py " + " ".join(student_args(
                              teacher, labelled, contexts, student, args.student_layers, args.student_epochs)),
                          "student_train_every": args.student_train_every}
    result["test"] = timed_accuracy(teacher / "model", student / "model", data / "test.tsv", args.rounds)
    result["demo_corpus"] = demo_corpus(teacher, student, contexts, work)
    result["gemm_gflops_after"] = gemm()
    result["load_after"] = load_average()
    result["total_seconds"] = time.time() - started
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
