"""Does continued masked-LM pretraining on the task's own text help NER? A curve of NER test F1 against
pretraining steps, through run_pretraining.py and run_ner.py themselves.

    python bench/pretraining_ner.py [--dataset turku_ner|bc5cdr_chem] [--stages 100,300,1000] [--ner_seeds 13,14,15]
                                    [--pretrain_batch 16] [--ner_sentences 3000] [--ner_epochs 4] [--ner_lr 1e-4]
                                    [--head_warmup_steps N] [--pretrain_only] [--skip_base] [--json PATH]

all-MiniLM-L6-v2 is continued with masked LM on the data set's training text (Turku NER or BC5CDR-chem; tags
dropped, run_pretraining.py reads the CoNLL words), in stages: stage k continues stage k-1's output for the
difference of the cumulative step counts of --stages (so the learning-rate schedule restarts at every stage; said
in the results). After each stage (and for the base model, unless --skip_base) run_ner.py with the same reduced
setting, once per --ner_seeds seed (the same seeds for every arm): whole training documents drawn with seed 13 up
to --ner_sentences sentences, 500 more validate, the whole dev/devel split is the test set. The first seed runs
for every stage first (the curve), then the others. Held-out perplexity: the pretraining runs' own held-out
documents (--eval_fraction of the training text, the same documents in every stage: the split is seeded). Writes
bench/pretraining_ner[_DATASET].json and .png (Turku without the suffix) after every run, and prints a markdown
table. Every run records its command and wall time beside its output folder (OUT.bench.json); a rerun in the
same --work_dir does not repeat a run whose command is the same, so --pretrain_only can run the pretraining
stages beside fine-tuning runs of the base model, and an interrupted measurement continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import DATA_DIR, ROOT, minilm_dir, write_json  # noqa: E402
from bench.context_decoding import SETS, prepare  # noqa: E402

TITLES = {"turku_ner": "Turku NER dev", "bc5cdr_chem": "BC5CDR-chem devel"}


def run(command: List[str], out: str, log: str) -> float:
    """Run a script from the project root into `out`, its output appended to `log`; its wall time. A run already
    recorded beside `out` (OUT.bench.json) with the same command is not repeated. RuntimeError on failure."""
    record = out.rstrip("/") + ".bench.json"
    if os.path.exists(record) and os.path.isdir(out):
        kept = json.load(open(record))
        if kept["command"] == command:
            return kept["seconds"]
        os.remove(record)
    started = time.time()
    with open(log, "a") as f:
        process = subprocess.run([sys.executable] + command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with {process.returncode}; see {log}")
    seconds = time.time() - started
    write_json(record, {"command": command, "seconds": seconds})
    return seconds


def pretrain(start: str, out: str, steps: int, args: argparse.Namespace, log: str) -> Dict[str, Any]:
    """Continue `start` for `steps` masked-LM steps; the held-out figures before and after and the wall time."""
    text = os.path.join(DATA_DIR, SETS[args.dataset][0])
    command = ["run_pretraining.py", f"--bert_model={start}", f"--input_files={text}",
               f"--output_dir={out}", "--overwrite_output_dir", "--noresume", f"--max_seq_length={args.pretrain_len}",
               f"--train_batch_size={args.pretrain_batch}", "--optimizer_type=adamw",
               f"--learning_rate={args.pretrain_lr}", f"--num_train_steps={steps}",
               f"--num_warmup_steps={max(1, steps // 10)}", f"--eval_fraction={args.eval_fraction}",
               "--seed=42", f"--save_checkpoints_steps={steps}"]
    if args.head_warmup_steps is not None:
        command.append(f"--head_warmup_steps={args.head_warmup_steps}")
    seconds = run(command, out, log)
    return {"steps": steps, "seconds": seconds, **json.load(open(os.path.join(out, "eval_results.json")))}


def fine_tune(model: str, data: str, out: str, seed: int, args: argparse.Namespace, log: str) -> Dict[str, Any]:
    """One run_ner.py of the reduced setting; the test F1 and the wall time."""
    seconds = run(["run_ner.py", "--flagfile=flags/ner_quick.flags", f"--bert_model={model}", f"--data_path={data}",
                   f"--save_model_path={out}", "--overwrite_output_dir", "--noresume", "--context=none",
                   f"--epochs={args.ner_epochs}", f"--max_len={args.ner_max_len}", f"--batch_size={args.ner_batch}",
                   f"--learning_rate={args.ner_lr}", f"--seed={seed}", "--noverbose"], out, log)
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
    measured = [a for a in arms if "perplexity" in a]
    right.plot([a["steps"] for a in measured], [a["perplexity"] for a in measured], "s--", color="tab:red")
    right.set_yscale("log")
    right.set_ylabel("held-out masked-LM perplexity", color="tab:red")
    left.set_title(f"all-MiniLM-L6-v2 continued on {args.dataset} text, then NER")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    """Pretrain in stages, fine-tune after each (every seed), write the JSON, the plot and the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="turku_ner", choices=sorted(SETS))
    p.add_argument("--stages", default="100,300,1000", help="cumulative masked-LM step counts")
    p.add_argument("--ner_seeds", default="13,14,15", help="run_ner.py seeds, the same for every arm")
    p.add_argument("--pretrain_batch", type=int, default=16)
    p.add_argument("--pretrain_lr", type=float, default=1e-4)
    p.add_argument("--pretrain_len", type=int, default=128, help="--max_seq_length of the pretraining runs")
    p.add_argument("--eval_fraction", type=float, default=0.03)
    p.add_argument("--ner_sentences", type=int, default=3000)
    p.add_argument("--ner_epochs", type=int, default=4)
    p.add_argument("--ner_lr", type=float, default=1e-4)
    p.add_argument("--ner_max_len", type=int, default=128)
    p.add_argument("--ner_batch", type=int, default=16)
    p.add_argument("--head_warmup_steps", type=int, default=None,
                   help="run_pretraining.py's --head_warmup_steps (default: its own default)")
    p.add_argument("--pretrain_only", action="store_true",
                   help="only the pretraining stages (a later run with the same settings reuses them)")
    p.add_argument("--ner_arms", default="", help="the arms (their steps) to fine-tune; default all (several "
                   "processes can share the arms and seeds, and a last run with all of them collects them)")
    p.add_argument("--skip_base", action="store_true",
                   help="no arm for the unpretrained model (when another measurement has it)")
    p.add_argument("--work_dir", default=None, help="default /tmp/bert_tf_pretraining_ner_DATASET")
    p.add_argument("--json", default=None, help="default bench/pretraining_ner[_DATASET].json (the plot beside it)")
    args = p.parse_args()
    args.work_dir = args.work_dir or f"/tmp/bert_tf_pretraining_ner_{args.dataset}"
    suffix = "" if args.dataset == "turku_ner" else f"_{args.dataset}"
    json_path = args.json or os.path.join(ROOT, "bench", f"pretraining_ner{suffix}.json")
    os.makedirs(args.work_dir, exist_ok=True)
    log = os.path.join(args.work_dir, "log.txt")
    data = prepare(args.dataset, args.work_dir, args.ner_sentences, "documents", 13)
    from bench.tf_step import gemm_rate
    from bert_tf.html_report import cpu_model_name

    results: Dict[str, Any] = {"command": "python bench/pretraining_ner.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                               "plot": os.path.basename(json_path)[:-len(".json")] + ".png",
                               "args": vars(args), "cpu": cpu_model_name(),
                               "gemm_gflops": gemm_rate(2048, "float32")["flops"] / 1e9, "arms": []}
    stages = ([] if args.skip_base else [0]) + [int(s) for s in args.stages.split(",") if s]
    seeds = [int(s) for s in args.ner_seeds.split(",")]

    def save() -> None:
        write_json(json_path, results)
        plot([a for a in results["arms"] if "f1_mean" in a], args, json_path[:-len(".json")] + ".png")

    models: Dict[int, str] = {}
    model, done = minilm_dir(), 0
    for stage in stages:
        arm: Dict[str, Any] = {"steps": stage, "ner": []}
        if stage:
            out = os.path.join(args.work_dir, f"pretrained_{stage}")
            figures = pretrain(model, out, stage - done, args, log)
            arm.update(figures["after"], pretrain_seconds=figures["seconds"])
            if not done and results["arms"]:
                results["arms"][0].update(figures["before"])
            print(json.dumps({"steps": stage, "pretrain_seconds": figures["seconds"], **figures["after"]}), flush=True)
            model, done = out, stage
        models[stage] = model
        results["arms"].append(arm)
    if args.pretrain_only:
        return
    chosen = [int(s) for s in args.ner_arms.split(",") if s] or [arm["steps"] for arm in results["arms"]]
    for seed in seeds:
        for arm in [arm for arm in results["arms"] if arm["steps"] in chosen]:
            out = os.path.join(args.work_dir, f"ner_{arm['steps']}_seed{seed}")
            arm["ner"].append(fine_tune(models[arm["steps"]], data, out, seed, args, log))
            print(json.dumps({"steps": arm["steps"], **arm["ner"][-1]}), flush=True)
            summarize(arm)
            save()
    from bench.report import pretraining_ner_table

    print("\n".join(pretraining_ner_table(results["arms"])))


if __name__ == "__main__":
    main()
