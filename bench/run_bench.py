"""bert-tf benchmarks, side by side with a PyTorch reference, in one run: `make bench`.

    python bench/run_bench.py                                  # every case, full size
    python bench/run_bench.py --cases step,prep --step_steps 2 # a quick subset
    python bench/run_bench.py --cases step --use_xla --use_amp --seq_lens 128,256 --peak_tflops 989  # GPU

Cases (each in processes of its own, one after another):
  step     training step at the BERT-base shape: our Trainer (with and without XLA) vs
           transformers + torch.optim.AdamW; model FLOP/s over the 4096^2 tf.matmul rate.
  ner      one NER epoch on BC5CDR with all-MiniLM-L6-v2: ours (length buckets) vs the
           reference (shuffled batches padded to their longest); wall time, padding, devel F1;
           the input pipeline alone.
  prep     classifier data preparation (read, tokenize, featurize, cache) on generated
           consensus rows: examples/s and peak memory at two sizes.
  predict  prediction throughput with MiniLM: NER words/s, classifier examples/s.

Writes bench/RESULTS.md (and bench/results.json with every figure).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.common import (  # noqa: E402
    BC5CDR_DEVEL, BC5CDR_TRAIN, CONSENSUS_LABELS, DATA_DIR, ROOT, CaseSkipped, cpu_model, load_average, log,
    memory_gib, minilm_dir, package_versions, run_json, write_json,
)

CASES = ("step", "ner", "prep", "predict")
PACKAGES = ("tensorflow", "keras", "keras-hub", "torch", "transformers", "tokenizers", "numpy")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line flags: which cases, and how big each is."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument("--no_reference", action="store_true", help="skip the PyTorch reference loops")
    p.add_argument("--work_dir", default=os.path.join("/tmp", "bert_tf_bench"),
                   help="scratch space: generated data, caches, exchanged arrays")
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    p.add_argument("--seed", type=int, default=13)
    g = p.add_argument_group("step (training step at the BERT-base shape)")
    g.add_argument("--seq_lens", default="128", help="comma-separated sequence lengths")
    g.add_argument("--batch_size", type=int, default=8)
    g.add_argument("--layers", type=int, default=12)
    g.add_argument("--hidden", type=int, default=768)
    g.add_argument("--heads", type=int, default=12)
    g.add_argument("--intermediate", type=int, default=3072)
    g.add_argument("--vocab", type=int, default=50105)
    g.add_argument("--num_labels", type=int, default=9)
    g.add_argument("--step_warmup", type=int, default=2, help="untimed steps (tracing, compilation)")
    g.add_argument("--step_steps", type=int, default=3, help="steps per timed repeat")
    g.add_argument("--step_repeats", type=int, default=4, help="timed repeats (best and median reported)")
    g.add_argument("--use_xla", action="store_true",
                   help="XLA only in the step case (default: with and without), and XLA in ner/predict")
    g.add_argument("--use_amp", action="store_true", help="every step run with --use_amp's precision (meant for a GPU: mixed_float16 + loss scaling)")
    p.add_argument("--no_amp_variants", action="store_true",
                   help="skip the extra --use_amp runs of ours in the step and ner cases (on a CPU with native "
                        "bfloat16 they run in mixed_bfloat16; elsewhere on a CPU they are skipped by themselves)")
    g.add_argument("--peak_tflops", type=float, default=None, help="the device's peak TFLOP/s, for %% of peak")
    g.add_argument("--gemm_size", type=int, default=4096)
    g = p.add_argument_group("ner (one training epoch on BC5CDR)")
    g.add_argument("--ner_sentences", type=int, default=None, help="subsample the training set (default: all)")
    g.add_argument("--ner_eval_sentences", type=int, default=None, help="subsample devel (default: all)")
    g.add_argument("--ner_epochs", type=int, default=1)
    g.add_argument("--ner_batch_size", type=int, default=16)
    g.add_argument("--ner_max_len", type=int, default=128)
    g.add_argument("--ner_learning_rate", type=float, default=1e-4)
    g = p.add_argument_group("prep (classifier data preparation)")
    g.add_argument("--prep_rows", default="100000,1000000", help="comma-separated row counts (first: the rate)")
    g.add_argument("--prep_max_seq_length", type=int, default=256)
    g.add_argument("--prep_repeats", type=int, default=2, help="builds per size (the fastest is reported)")
    g = p.add_argument_group("predict (prediction throughput)")
    g.add_argument("--predict_sentences", type=int, default=None, help="devel sentences (default: all)")
    g.add_argument("--predict_examples", type=int, default=None, help="real consensus examples (default: all)")
    g.add_argument("--predict_batch_size", type=int, default=64)
    g.add_argument("--predict_max_seq_length", type=int, default=256, help="classifier sequence length")
    args = p.parse_args(argv)
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        p.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    return args


def _ints(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _worker(module: str, config: Dict[str, Any], work_dir: str, name: str,
            env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run one worker process with its JSON config (and extra environment); its result."""
    log(f"{name}: {module} {json.dumps(config)[:160]}")
    result = run_json(module, ["--config", json.dumps(config)], os.path.join(work_dir, name + ".json"), env=env)
    log(f"{name}: done in {result.get('process_seconds')} s" + (f" ({result['error']})" if "error" in result else ""))
    return result


def step_case(args: argparse.Namespace) -> Dict[str, Any]:
    """GEMM rates, then for every sequence length: ours (no XLA, XLA) and the reference."""
    out: Dict[str, Any] = {"gemm": {}, "runs": {}}
    amp_variant = not args.use_amp and not args.no_amp_variants  # ours again, with --use_amp's precision
    amp_dtype = "float16" if _gpu_name() != "none" else "bfloat16"  # what --use_amp picks there
    dtypes = ["float32"] + ([amp_dtype] if args.use_amp or amp_variant else [])
    for dtype in dtypes:
        out["gemm"][f"tf_{dtype}"] = _worker("bench.tf_step", {"mode": "gemm", "size": args.gemm_size, "dtype": dtype},
                                             args.work_dir, f"gemm_tf_{dtype}")
    if not args.no_reference:
        out["gemm"]["torch_float32"] = _worker("bench.torch_reference", {"mode": "gemm", "size": args.gemm_size},
                                               args.work_dir, "gemm_torch")
    shape = {"batch": args.batch_size, "vocab": args.vocab, "layers": args.layers, "hidden": args.hidden,
             "heads": args.heads, "intermediate": args.intermediate, "labels": args.num_labels, "seed": args.seed,
             "use_amp": args.use_amp, "warmup": args.step_warmup, "steps": args.step_steps,
             "repeats": args.step_repeats}
    xla_modes = [True] if args.use_xla else [False, True]
    for seq_len in _ints(args.seq_lens):
        runs: Dict[str, Any] = {}
        for xla in xla_modes:
            cfg = dict(shape, mode="step", seq_len=seq_len, use_xla=xla)
            runs["ours_xla" if xla else "ours"] = _worker("bench.tf_step", cfg, args.work_dir,
                                                          f"step_{seq_len}_{'xla' if xla else 'noxla'}")
        if amp_variant:
            cfg = dict(shape, mode="step", seq_len=seq_len, use_xla=False, use_amp=True)
            runs["ours_amp"] = _worker("bench.tf_step", cfg, args.work_dir, f"step_{seq_len}_amp")
        if not args.no_reference:
            runs["reference"] = _worker("bench.torch_reference", dict(shape, mode="step", seq_len=seq_len),
                                        args.work_dir, f"step_{seq_len}_torch")
        out["runs"][str(seq_len)] = runs
    out["shape"] = shape
    return out


def ner_case(args: argparse.Namespace) -> Dict[str, Any]:
    """One epoch of ours and of the reference on BC5CDR, scored on devel."""
    cfg = {
        "train_path": BC5CDR_TRAIN, "devel_path": BC5CDR_DEVEL, "model_dir": minilm_dir(),
        "sentences": args.ner_sentences, "eval_sentences": args.ner_eval_sentences, "epochs": args.ner_epochs,
        "batch_size": args.ner_batch_size, "max_len": args.ner_max_len, "learning_rate": args.ner_learning_rate,
        "weight_decay": 0.01, "seed": args.seed, "use_xla": args.use_xla, "num_workers": 2,
        "eval_batch_size": 64, "reference": not args.no_reference, "work_dir": args.work_dir,
        "with_amp": not args.no_amp_variants,
    }
    return _worker("bench.tf_ner", cfg, args.work_dir, "ner")


def prep_case(args: argparse.Namespace) -> Dict[str, Any]:
    """Generate consensus rows at each size, featurize each in a fresh process; check the parallel build."""
    from bench.common import CONSENSUS_EXAMPLES, require_files
    from bench.prep import count_distinct_words, generate_consensus_tsv

    require_files(CONSENSUS_EXAMPLES, CONSENSUS_LABELS)
    base = {"labels_file": CONSENSUS_LABELS, "model_dir": minilm_dir(), "max_seq_length": args.prep_max_seq_length,
            "cache_root": os.path.join(args.work_dir, "prep_cache")}
    out: Dict[str, Any] = {"verify": _worker("bench.prep", dict(base, mode="verify", tsv=CONSENSUS_EXAMPLES),
                                             args.work_dir, "prep_verify"), "sizes": {}}
    for i, rows in enumerate(_ints(args.prep_rows)):
        path = os.path.join(args.work_dir, f"consensus_{rows}_seed{args.seed}.tsv")
        log(f"prep: generating {rows} rows")
        generated = generate_consensus_tsv(path, rows, args.seed)
        generated["distinct_words"] = count_distinct_words(path, rows)
        runs = [_worker("bench.prep", dict(base, tsv=path), args.work_dir, f"prep_{rows}_{r}")
                for r in range(max(1, args.prep_repeats))]
        best = min(runs, key=lambda r: r.get("seconds", float("inf")))
        out["sizes"][str(rows)] = {"generated": generated, **best,
                                   "all_seconds": [r.get("seconds") for r in runs]}
        if i == 0:
            out["one_process"] = _worker("bench.prep", dict(base, tsv=path, workers=1), args.work_dir,
                                         f"prep_{rows}_serial")
    return out


def predict_case(args: argparse.Namespace) -> Dict[str, Any]:
    """NER words/s and classifier examples/s with MiniLM."""
    cfg = {"devel_path": BC5CDR_DEVEL, "model_dir": minilm_dir(), "sentences": args.predict_sentences,
           "batch_size": args.predict_batch_size, "max_len": args.ner_max_len,
           "max_seq_length": args.predict_max_seq_length, "examples": args.predict_examples, "use_xla": args.use_xla, "work_dir": args.work_dir}
    return _worker("bench.tf_predict", cfg, args.work_dir, "predict")


RUNNERS: Dict[str, Callable[[argparse.Namespace], Dict[str, Any]]] = {
    "step": step_case, "ner": ner_case, "prep": prep_case, "predict": predict_case,
}


def machine_facts() -> Dict[str, Any]:
    """CPU, cores, memory, GPU presence and package versions."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(),
            "gpu": _gpu_name(), "versions": package_versions(PACKAGES)}


def _gpu_name() -> str:
    """The first NVIDIA GPU's name (nvidia-smi), or "none"."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return "none"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "none"
    return out.splitlines()[0] if out else "none"


# results.json's figures that other benches measure (added with `python -m bench.report --add KEY=FILE.json`).
OTHER_BENCHES = ("inference_engine", "inference_engine_per_tensor", "distillation", "mlm_step", "mlm_step_xla",
                 "pretraining_ner")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the selected cases, then write RESULTS.md and results.json."""
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    command = "python bench/run_bench.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    results: Dict[str, Any] = {
        "command": command.strip(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_facts(), "load_before": load_average(), "data_dir": os.path.normpath(DATA_DIR),
        "args": vars(args), "cases": {},
    }
    started = time.time()
    for case in args.cases.split(","):
        log(f"case {case}")
        case_started = time.time()
        try:
            results["cases"][case] = RUNNERS[case](args)
        except CaseSkipped as e:
            log(f"case {case} skipped: {e}")
            results["cases"][case] = {"skipped": str(e)}
        results["cases"][case]["case_seconds"] = round(time.time() - case_started, 1)
    results["load_after"] = load_average()
    results["total_seconds"] = round(time.time() - started, 1)
    json_path = os.path.join(os.path.dirname(args.results), "results.json")
    if os.path.exists(json_path):  # the other benches' figures (python -m bench.report --add) stay
        old = json.load(open(json_path, encoding="utf-8"))
        results.update({k: old[k] for k in OTHER_BENCHES if k in old})
    write_json(json_path, results)
    report.write(results, args.results)
    log(f"wrote {args.results} and {json_path} in {results['total_seconds']} s")
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
