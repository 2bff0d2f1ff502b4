"""Does continued masked-LM pretraining on the task's own text help NER? A curve of Turku NER dev F1 against
pretraining steps, through run_pretraining.py and run_ner.py themselves.

    python bench/pretraining_ner.py [--stages 100,300] [--pretrain_batch 16] [--ner_sentences 1500] [--ner_epochs 3]

all-MiniLM-L6-v2 is continued with masked LM on the Turku NER training text (tags dropped, run_pretraining.py
reads the CoNLL words), in stages: stage k continues stage k-1's output for the difference of the cumulative step
counts of --stages (so the learning-rate schedule restarts at every stage; said in the results). After each stage
(and for the base model) one run_ner.py with the same reduced setting and seed: whole training documents drawn
with a seed up to --ner_sentences sentences, 500 more validate, the whole Turku dev split is the test set.
Held-out perplexity: the pretraining runs' own held-out documents (--eval_fraction of the training text, the same
documents in every stage: the split is seeded). Writes bench/pretraining_ner.json, bench/pretraining_ner.png and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import DATA_DIR, ROOT, minilm_dir  # noqa: E402
from bench.context_decoding import prepare  # noqa: E402

TURKU_TRAIN = os.path.join(DATA_DIR, "turku_ner", "train.tsv")


def run(command: List[str], log: str) -> float:
    """Run a command from the project root, its output appended to `log`; its wall time. RuntimeError on failure."""
    started = time.time()
    with open(log, "a") as f:
        process = subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with {process.returncode}; see {log}")
    return time.time() - started


def pretrain(start: str, out: str, steps: int, args: argparse.Namespace, log: str) -> Dict[str, Any]:
    """Continue `start` for `steps` masked-LM steps; the held-out figures before and after and the wall time."""
    seconds = run([sys.executable, "run_pretraining.py", f"--bert_model={start}", f"--input_files={TURKU_TRAIN}",
                   f"--output_dir={out}", "--overwrite_output_dir", "--noresume", "--max_seq_length=128",
                   f"--train_batch_size={args.pretrain_batch}", "--optimizer_type=adamw",
                   f"--learning_rate={args.pretrain_lr}", f"--num_train_steps={steps}",
                   f"--num_warmup_steps={max(1, steps // 10)}", f"--eval_fraction={args.eval_fraction}",
                   "--seed=42", f"--save_checkpoints_steps={steps}"], log)
    results = json.load(open(os.path.join(out, "eval_results.json")))
    return {"steps": steps, "seconds": seconds, **results}


def fine_tune(model: str, data: str, out: str, args: argparse.Namespace, log: str) -> Dict[str, Any]:
    """One run_ner.py of the reduced setting; the test (Turku dev) F1 and the wall time."""
    seconds = run([sys.executable, "run_ner.py", f"--bert_model={model}", f"--data_path={data}",
                   f"--save_model_path={out}", "--overwrite_output_dir", "--noresume", "--context=none",
                   f"--epochs={args.ner_epochs}", "--max_len=128", "--batch_size=16",
                   f"--learning_rate={args.ner_lr}", "--seed=13", "--noverbose"], log)
    results = json.load(open(os.path.join(out, "test_results.json")))
    return {"f1": results["f1"], "best_validation_f1": results["best_validation_f1"], "seconds": seconds}


def plot(arms: List[Dict[str, Any]], path: str) -> None:
    """Dev F1 and held-out perplexity against pretraining steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [a["steps"] for a in arms]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(steps, [100 * a["ner"]["f1"] for a in arms], "o-", color="tab:blue")
    left.set_xlabel("masked-LM steps on the Turku training text (batch 16, length 128)")
    left.set_ylabel("Turku NER dev F1 (%)", color="tab:blue")
    right = left.twinx()
    right.plot(steps, [a["perplexity"] for a in arms], "s--", color="tab:red")
    right.set_yscale("log")
    right.set_ylabel("held-out masked-LM perplexity", color="tab:red")
    left.set_title("all-MiniLM-L6-v2 continued on Turku text, then NER")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(results: Dict[str, Any]) -> str:
    """The markdown table of the arms."""
    lines = ["| pretraining steps | held-out perplexity | held-out MLM accuracy | dev F1 | pretraining s | NER s |",
             "|---|---|---|---|---|---|"]
    for a in results["arms"]:
        lines.append(f"| {a['steps']} | {a['perplexity']:,.1f} | {a['accuracy']:.3f} | {100 * a['ner']['f1']:.2f} | "
                     f"{a.get('pretrain_seconds', 0):.0f} | {a['ner']['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Pretrain in stages, fine-tune after each, write the JSON, the plot and the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="100,300", help="cumulative masked-LM step counts")
    p.add_argument("--pretrain_batch", type=int, default=16)
    p.add_argument("--pretrain_lr", type=float, default=1e-4)
    p.add_argument("--eval_fraction", type=float, default=0.03)
    p.add_argument("--ner_sentences", type=int, default=1500)
    p.add_argument("--ner_epochs", type=int, default=3)
    p.add_argument("--ner_lr", type=float, default=5e-4)
    p.add_argument("--work_dir", default="/tmp/bert_tf_pretraining_ner")
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    log = os.path.join(args.work_dir, "log.txt")
    data = prepare("turku_ner", args.work_dir, args.ner_sentences, "documents", 13)
    from bench.tf_step import gemm_rate
    from bert_tf.html_report import cpu_model_name

    results: Dict[str, Any] = {"args": vars(args), "cpu": cpu_model_name(),
                               "gemm_gflops": gemm_rate(2048, "float32")["flops"] / 1e9, "arms": []}
    model, done = minilm_dir(), 0
    for stage in [0] + [int(s) for s in args.stages.split(",")]:
        arm: Dict[str, Any] = {"steps": stage}
        if stage:
            out = os.path.join(args.work_dir, f"pretrained_{stage}")
            figures = pretrain(model, out, stage - done, args, log)
            arm.update(figures["after"], pretrain_seconds=figures["seconds"])
            if not done:
                results["arms"][0].update(figures["before"])
            model, done = out, stage
        arm["ner"] = fine_tune(model, data, os.path.join(args.work_dir, f"ner_{stage}"), args, log)
        results["arms"].append(arm)
        print(json.dumps(arm), flush=True)
        with open(os.path.join(ROOT, "bench", "pretraining_ner.json"), "w") as f:
            json.dump(results, f, indent=1)
    plot(results["arms"], os.path.join(ROOT, "bench", "pretraining_ner.png"))
    print(table(results))


if __name__ == "__main__":
    main()
