"""Does continued masked-LM pretraining on the task's own text help NER? A curve of NER test F1 against
pretraining steps, through run_pretraining.py and run_ner.py themselves.

    python bench/pretraining_ner.py [--dataset turku_ner|bc5cdr_chem] [--stages 100,300] [--ner_seeds 13,14,15]
                                    [--pretrain_batch 16] [--ner_sentences 1500] [--ner_epochs 3]

all-MiniLM-L6-v2 is continued with masked LM on the data set's training text (Turku NER or BC5CDR-chem; tags
dropped, run_pretraining.py reads the CoNLL words), in stages: stage k continues stage k-1's output for the difference of the cumulative step
counts of --stages (so the learning-rate schedule restarts at every stage; said in the results). After each stage
(and for the base model) run_ner.py with the same reduced setting, once per --ner_seeds seed (the same seeds for
every arm): whole training documents drawn with seed 13 up to --ner_sentences sentences, 500 more validate, the
whole dev/devel split is the test set. The first seed runs for every stage first (the curve), then the others.
Held-out perplexity: the pretraining runs' own held-out documents (--eval_fraction of the training text, the same
documents in every stage: the split is seeded). Writes bench/pretraining_ner[_DATASET].json and .png (Turku
without the suffix) after every run, and prints a markdown table. A rerun with the same settings and --work_dir
keeps the runs already in the JSON whose outputs are still there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import DATA_DIR, ROOT, minilm_dir  # noqa: E402
from bench.context_decoding import SETS, prepare  # noqa: E402

TITLES = {"turku_ner": "Turku NER dev", "bc5cdr_chem": "BC5CDR-chem devel"}


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
    text = os.path.join(DATA_DIR, SETS[args.dataset][0])
    seconds = run([sys.executable, "run_pretraining.py", f"--bert_model={start}", f"--input_files={text}",
                   f"--output_dir={out}", "--overwrite_output_dir", "--noresume", f"--max_seq_length={args.pretrain_len}",
                   f"--train_batch_size={args.pretrain_batch}", "--optimizer_type=adamw",
                   f"--learning_rate={args.pretrain_lr}", f"--num_train_steps={steps}",
                   f"--num_warmup_steps={max(1, steps // 10)}", f"--eval_fraction={args.eval_fraction}",
                   "--seed=42", f"--save_checkpoints_steps={steps}"], log)
    results = json.load(open(os.path.join(out, "eval_results.json")))
    return {"steps": steps, "seconds": seconds, **results}


def fine_tune(model: str, data: str, out: str, seed: int, args: argparse.Namespace, log: str) -> Dict[str, Any]:
    """One run_ner.py of the reduced setting; the test F1 and the wall time."""
    seconds = run([sys.executable, "run_ner.py", "--flagfile=flags/ner_quick.flags", f"--bert_model={model}", f"--data_path={data}",
                   f"--save_model_path={out}", "--overwrite_output_dir", "--noresume", "--context=none",
                   f"--epochs={args.ner_epochs}", f"--max_len={args.ner_max_len}", f"--batch_size={args.ner_batch}",
                   f"--learning_rate={args.ner_lr}", f"--seed={seed}", "--noverbose"], log)
    results = json.load(open(os.path.join(out, "test_results.json")))
    return {"seed": seed, "f1": results["f1"], "best_validation_f1": results["best_validation_f1"],
            "seconds": seconds}


def summarize(arm: Dict[str, Any]) -> None:
    """The arm's mean and sample standard deviation of F1 over its seeds."""
    import numpy as np

    f1 = np.array([run["f1"] for run in arm["ner"]])
    arm["f1_mean"] = float(f1.mean())
    arm["f1_std"] = float(f1.std(ddof=1)) if len(f1) > 1 else None


def plot(arms: List[Dict[str, Any]], args: argparse.Namespace, path: str) -> None:
    """Test F1 (every seed, and the mean) and held-out perplexity against pretraining steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [a["steps"] for a in arms]
    fig, left = plt.subplots(figsize=(6, 4))
    for a in arms:
        left.plot([a["steps"]] * len(a["ner"]), [100 * run["f1"] for run in a["ner"]], ".", color="tab:blue",
                  alpha=0.5)
    left.plot(steps, [100 * a["f1_mean"] for a in arms], "o-", color="tab:blue")
    left.set_xlabel(f"masked-LM steps on the training text (batch {args.pretrain_batch}, length {args.pretrain_len})")
    left.set_ylabel(f"{TITLES[args.dataset]} F1 (%), seeds and mean", color="tab:blue")
    right = left.twinx()
    right.plot(steps, [a["perplexity"] for a in arms], "s--", color="tab:red")
    right.set_yscale("log")
    right.set_ylabel("held-out masked-LM perplexity", color="tab:red")
    left.set_title(f"all-MiniLM-L6-v2 continued on {args.dataset} text, then NER")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(results: Dict[str, Any]) -> str:
    """The markdown table of the arms."""
    lines = ["| pretraining steps | held-out perplexity | held-out MLM accuracy | test F1 per seed | mean F1 "
             "| pretraining s | NER s (mean) |", "|---|---|---|---|---|---|---|"]
    for a in [a for a in results["arms"] if a["ner"]]:
        seeds = ", ".join(f"{100 * run['f1']:.2f} ({run['seed']})" for run in a["ner"])
        spread = f" ± {100 * a['f1_std']:.2f}" if a.get("f1_std") is not None else ""
        ner_seconds = sum(run["seconds"] for run in a["ner"]) / max(1, len(a["ner"]))
        lines.append(f"| {a['steps']} | {a.get('perplexity', float('nan')):,.1f} | {a.get('accuracy', float('nan')):.3f} "
                     f"| {seeds} | {100 * a['f1_mean']:.2f}{spread} | {a.get('pretrain_seconds', 0):.0f} "
                     f"| {ner_seconds:.0f} |")
    return "\n".join(lines)


def earlier(path: str, args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """The JSON of an earlier run with the same settings (seeds and stages aside), or None."""
    if not os.path.exists(path):
        return None
    old = json.load(open(path))
    same = {k: v for k, v in vars(args).items() if k not in ("stages", "ner_seeds")}
    kept = {k: v for k, v in old.get("args", {}).items() if k not in ("stages", "ner_seeds")}
    return old if kept == same else None


def main() -> None:
    """Pretrain in stages, fine-tune after each (every seed), write the JSON, the plot and the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="turku_ner", choices=sorted(SETS))
    p.add_argument("--stages", default="100,300", help="cumulative masked-LM step counts")
    p.add_argument("--ner_seeds", default="13", help="run_ner.py seeds, the same for every arm")
    p.add_argument("--pretrain_batch", type=int, default=16)
    p.add_argument("--pretrain_lr", type=float, default=1e-4)
    p.add_argument("--pretrain_len", type=int, default=128, help="--max_seq_length of the pretraining runs")
    p.add_argument("--eval_fraction", type=float, default=0.03)
    p.add_argument("--ner_sentences", type=int, default=1500)
    p.add_argument("--ner_epochs", type=int, default=3)
    p.add_argument("--ner_lr", type=float, default=5e-4)
    p.add_argument("--ner_max_len", type=int, default=128)
    p.add_argument("--ner_batch", type=int, default=16)
    p.add_argument("--work_dir", default=None, help="default /tmp/bert_tf_pretraining_ner_DATASET")
    args = p.parse_args()
    args.work_dir = args.work_dir or f"/tmp/bert_tf_pretraining_ner_{args.dataset}"
    suffix = "" if args.dataset == "turku_ner" else f"_{args.dataset}"
    json_path = os.path.join(ROOT, "bench", f"pretraining_ner{suffix}.json")
    os.makedirs(args.work_dir, exist_ok=True)
    log = os.path.join(args.work_dir, "log.txt")
    data = prepare(args.dataset, args.work_dir, args.ner_sentences, "documents", 13)
    from bench.tf_step import gemm_rate
    from bert_tf.html_report import cpu_model_name

    results: Dict[str, Any] = {"args": vars(args), "cpu": cpu_model_name(),
                               "gemm_gflops": gemm_rate(2048, "float32")["flops"] / 1e9, "arms": []}
    old = earlier(json_path, args) or {"arms": []}
    done_before = {a["steps"]: a for a in old["arms"]}
    stages = [0] + [int(s) for s in args.stages.split(",") if s]
    seeds = [int(s) for s in args.ner_seeds.split(",")]
    models: Dict[int, str] = {}

    def save() -> None:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
        plot([a for a in results["arms"] if "f1_mean" in a], args, json_path[:-len(".json")] + ".png")

    model, done = minilm_dir(), 0
    for stage in stages:
        out = os.path.join(args.work_dir, f"pretrained_{stage}")
        kept = done_before.get(stage)
        arm: Dict[str, Any] = {"steps": stage, "ner": []}
        if stage and kept and os.path.exists(os.path.join(out, "eval_results.json")):
            arm.update({k: v for k, v in kept.items() if k not in ("ner", "f1_mean", "f1_std")})
        elif stage:
            figures = pretrain(model, out, stage - done, args, log)
            arm.update(figures["after"], pretrain_seconds=figures["seconds"])
            if not done:
                results["arms"][0].update(figures["before"])
        elif kept:
            arm.update({k: v for k, v in kept.items() if k not in ("ner", "f1_mean", "f1_std")})
        if stage:
            model, done = out, stage
        models[stage] = model
        arm["ner"] = [run for run in (kept or {}).get("ner", []) if run["seed"] in seeds]
        results["arms"].append(arm)
    for seed in seeds:
        for arm in results["arms"]:
            if all(run["seed"] != seed for run in arm["ner"]):
                out = os.path.join(args.work_dir, f"ner_{arm['steps']}_seed{seed}")
                arm["ner"].append(fine_tune(models[arm["steps"]], data, out, seed, args, log))
                print(json.dumps({"steps": arm["steps"], **arm["ner"][-1]}), flush=True)
            summarize(arm)
            save()
    print(table(results))


if __name__ == "__main__":
    main()
