"""One prepared check of the GPU paths: XLA, mixed precision (float16 with loss scaling, bfloat16),
the mirrored strategy over two replicas, and prediction; figures into bench/RESULTS.md.

    bash bench/gpu_check.sh             # on a machine with one GPU: about 8 minutes
    bash bench/gpu_check.sh --dry_run   # anywhere: every step at toy size on the CPU, in seconds;
                                        # writes its report to a scratch file, not RESULTS.md

Steps (each in a process of its own; a step that fails is reported and the others still run; a dry run runs them
all in one process, with a random BERT of the toy shape and MiniLM's vocabulary in place of MiniLM):
 1. the device, driver, TensorFlow build, and whether TensorFlow sees the GPU;
 2. the BERT-base token-classification training step at lengths 128 and 256 in float32, float16
    (--use_amp, loss scaling) and bfloat16, each with and without XLA: sequences/s and % of the
    device's dense half-precision peak;
 3. one NER epoch on BC5CDR (../shared/data) with all-MiniLM-L6-v2, float32 and --use_amp --use_xla:
    wall time and devel F1 (mixed precision must be within 0.5 point of float32);
 4. a few training steps under MirroredStrategy over two logical GPUs carved from the one device, whose
    weights must match one replica's;
 5. classifier prediction at length 256 with --use_amp --use_xla: examples/s;
 6. the ONNX Runtime inference engine (--inference_engine=onnxruntime) on the GPU: TensorFlow float32, ONNX
    Runtime float32 and float16 interleaved, examples/s at length 256, and float16's largest probability change
    and label agreement (gpu_check.sh installs onnxruntime-gpu for it when the environment lacks CUDA's provider);
 7. the GPU section of bench/RESULTS.md, with the exact command.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (BC5CDR_DEVEL, BC5CDR_TRAIN, CONSENSUS_EXAMPLES, ROOT, CaseSkipped,  # noqa: E402
                          bert_train_flops, log, minilm_dir, run_json)

BEGIN, END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"
# Dense (no sparsity) half-precision tensor-core peaks in TFLOP/s, from the vendors' data sheets.
DENSE_HALF_PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0),
                          ("A10G", 70.0), ("A10", 125.0), ("L40S", 362.0), ("L4", 121.0), ("V100", 125.0),
                          ("T4", 65.0))
NVIDIA_V100_AMP_SEQ_PER_S = 417.0  # NVIDIA TF1 BioBERT NER, BERT-base, one V100-32G, AMP
F1_TOLERANCE = 0.005


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Flags: dry run, where to write, the peak override."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry_run", action="store_true", help="toy sizes on the CPU; report to --results (scratch)")
    p.add_argument("--results", default=None, help="Markdown file whose GPU section is (re)written "
                   "(default: bench/RESULTS.md; with --dry_run: WORK_DIR/RESULTS.md)")
    p.add_argument("--work_dir", default=os.path.join("/tmp", "bert_tf_gpu_check"))
    p.add_argument("--peak_tflops", type=float, default=None, help="dense half-precision peak (default: by GPU name)")
    p.add_argument("--timeout_s", type=float, default=None,
                   help="per-step limit in seconds (default 240; dry run 600, for a loaded CPU)")
    return p.parse_args(argv)


def cpu_has_native_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has native bfloat16 arithmetic (AMX-BF16 or AVX512-BF16), where --use_amp runs bfloat16."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            flags = f.read().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def sizes(dry_run: bool) -> Dict[str, Any]:
    """Shapes and counts of every step: the real ones, or toy ones for --dry_run."""
    if dry_run:
        return {"shape": {"batch": 2, "vocab": 512, "layers": 2, "heads": 2, "hidden": 32, "intermediate": 64,
                          "labels": 5, "seed": 1, "warmup": 1, "steps": 2, "repeats": 1},
                "seq_lens": [16], "ner": {"sentences": 8, "eval_sentences": 8, "max_len": 16},
                "predict_examples": 16, "predict_batch": 16, "predict_length": 32, "mirrored_steps": 2,
                "engine_repeats": 1}
    return {"shape": {"batch": 32, "vocab": 30522, "layers": 12, "heads": 12, "hidden": 768, "intermediate": 3072,
                      "labels": 9, "seed": 1, "warmup": 2, "steps": 10, "repeats": 2},
            "seq_lens": [128, 256], "ner": {"sentences": None, "eval_sentences": None, "max_len": 128},
            "predict_examples": None, "predict_batch": 128, "predict_length": 256, "mirrored_steps": 4,
            "engine_repeats": 3}


PRECISIONS = (("float32", False, "auto"), ("float16", True, "float16"), ("bfloat16", True, "bfloat16"))


def nvidia_smi() -> str:
    """nvidia-smi's one-line device summary, or why there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"nvidia-smi not available ({type(err).__name__})"
    return out.stdout.strip() or out.stderr.strip() or f"nvidia-smi exited {out.returncode}"


def peak_for(gpu_names: List[str], override: Optional[float]) -> Optional[float]:
    """The dense half-precision peak (TFLOP/s) of the first GPU, by name, unless given."""
    if override:
        return override
    for name in gpu_names:
        for key, peak in DENSE_HALF_PEAK_TFLOPS:
            if key in name:
                return peak
    return None


def step_settings(seq_lens: List[int], dry_run: bool = False) -> List[Dict[str, Any]]:
    """Every (length, precision, XLA) combination of step 2 (a dry run compiles XLA in float32 only: XLA
    compilation of emulated half precision on a CPU takes minutes and proves nothing about a GPU)."""
    return [{"seq_len": n, "precision_name": name, "use_amp": amp, "amp_dtype": dtype, "use_xla": xla}
            for n in seq_lens for name, amp, dtype in PRECISIONS for xla in (False, True)
            if not (dry_run and amp and xla)]


def toy_model_dir(work_dir: str, source: str, shape: Dict[str, Any]) -> str:
    """A dry run's model: a random BERT of the toy shape (tests/checkpoint_factory.py) with `source`'s vocabulary
    and tokenizer settings, in Hugging Face layout (what the NER, prediction and engine steps load; MiniLM's 22M
    parameters would cost a dry run most of its time and prove nothing more about these code paths). No
    TensorFlow in this process."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from checkpoint_factory import make_random_hf_checkpoint

    with open(os.path.join(source, "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().splitlines()
    folder = make_random_hf_checkpoint(os.path.join(work_dir, "toy_model"), vocab, hidden=shape["hidden"],
                                       layers=shape["layers"], heads=shape["heads"],
                                       intermediate=shape["intermediate"], seed=shape["seed"])
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):  # byte for byte
        if os.path.isfile(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), os.path.join(folder, name))
    return folder


def run_steps(args: argparse.Namespace, plan: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Steps 1-5, each a worker process (a dry run: all in one); their results by name."""
    work = args.work_dir
    model = None
    try:
        model = minilm_dir()
    except CaseSkipped as err:
        log(f"MiniLM steps skipped: {err}")
    if model and args.dry_run:
        model = toy_model_dir(work, model, plan["shape"])
    jobs: List[Tuple[str, Dict[str, Any]]] = [
        ("device", {"mode": "device"}),
        ("steps", {"mode": "steps", "shape": plan["shape"], "runs": step_settings(plan["seq_lens"], args.dry_run)}),
        ("mirrored", dict(plan["shape"], mode="mirrored", seq_len=plan["seq_lens"][0], use_xla=False,
                          use_amp=False, steps=plan["mirrored_steps"], tolerance=1e-4, dropout=0.0)),
    ]
    # A dry run on a CPU without native bfloat16 trains and predicts in float32 only: --use_amp would change
    # nothing there, and each step is still exercised end to end.
    amp_runs = not args.dry_run or cpu_has_native_bf16()
    if model:
        jobs.append(("ner", {"mode": "ner", "train_path": BC5CDR_TRAIN, "devel_path": BC5CDR_DEVEL,
                             "model_dir": model, **plan["ner"], "epochs": 1, "batch_size": 32,
                             "learning_rate": 1e-4, "weight_decay": 0.01, "seed": 13, "use_xla": False,
                             "amp_use_xla": not args.dry_run, "num_workers": 2, "eval_batch_size": 128, "reference": False,
                             "work_dir": work, "with_amp": amp_runs}))
        jobs.append(("predict", {"mode": "predict", "model_dir": model, "use_amp": amp_runs,
                                 "use_xla": not args.dry_run,
                                 "examples": plan["predict_examples"], "batch_size": plan["predict_batch"],
                                 "max_seq_length": plan["predict_length"], "work_dir": work}))
        jobs.append(("engine", {"mode": "engine", "model_dir": model, "consensus": CONSENSUS_EXAMPLES,
                                "examples": plan["predict_examples"], "batch_size": plan["predict_batch"],
                                "max_seq_length": plan["predict_length"], "repeats": plan["engine_repeats"],
                                "work_dir": work}))
    if args.dry_run:
        return _run_in_one_process(jobs, work, timeout)
    results: Dict[str, Any] = {}
    for name, cfg in jobs:
        log(f"step {name}: starting")
        results[name] = run_json("bench.gpu_check_worker", ["--config", json_dumps(cfg)],
                                 os.path.join(work, f"{name}.json"), timeout=timeout)
        log(f"step {name}: done in {results[name].get('process_seconds')} s"
            + (f" ({results[name]['error']})" if "error" in results[name] else ""))
    return results


def _run_in_one_process(jobs: List[Tuple[str, Dict[str, Any]]], work: str, timeout: float) -> Dict[str, Any]:
    """A dry run's steps, all in one worker process on the CPU (the worker's "sequence" mode: each step as in a
    process of its own, its failure its own result): one TensorFlow start-up instead of one per step."""
    log(f"steps {', '.join(name for name, _ in jobs)}: starting, in one process (dry run)")
    done = run_json("bench.gpu_check_worker", ["--config", json_dumps({"mode": "sequence", "jobs": jobs})],
                    os.path.join(work, "dry_run.json"), timeout=timeout * len(jobs), env={"CUDA_VISIBLE_DEVICES": ""})
    results = {name: done.get("results", {}).get(name) or {"error": done.get("error", "no result")}
               for name, _ in jobs}
    for name, result in results.items():
        log(f"step {name}: done in {result.get('process_seconds')} s"
            + (f" ({result['error']})" if "error" in result else ""))
    return results


def json_dumps(value: Any) -> str:
    """Compact JSON for a worker's --config."""
    import json

    return json.dumps(value, separators=(",", ":"))


def _fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, (list, tuple)):  # per-epoch figures: their sum
        value = sum(value) if value else None
    return "—" if value is None else f"{value:,.{digits}f}"


def step_table(steps: Dict[str, Any], peak: Optional[float]) -> List[str]:
    """Markdown rows of step 2."""
    lines = ["| length | precision | XLA | sequences/s | % of dense half peak | policy / note |",
             "|---:|---|---|---:|---:|---|"]
    for run in steps.get("runs", []):
        rate = run.get("seq_per_s")
        flops = run.get("model_flops_per_s")
        share = None if flops is None or not peak else 100.0 * flops / (peak * 1e12)
        note = run.get("policy") or run.get("skipped") or run.get("error", "")
        lines.append(f"| {run['seq_len']} | {run['precision_name']} | {'yes' if run['use_xla'] else 'no'} | "
                     f"{_fmt(rate)} | {_fmt(share)} | {note} |")
    return lines


def verdicts(results: Dict[str, Any], peak: Optional[float], dry_run: bool) -> List[str]:
    """The targets, each met or not (or why it could not be judged)."""
    out = []
    best = [r for r in results.get("steps", {}).get("runs", [])
            if r["seq_len"] == max(x["seq_len"] for x in results["steps"]["runs"]) and r["use_amp"]
            and r["use_xla"] and "seq_per_s" in r] if results.get("steps", {}).get("runs") else []
    if best and not dry_run:
        top = max(best, key=lambda r: r["seq_per_s"])
        share = 100.0 * top["model_flops_per_s"] / (peak * 1e12) if peak else None
        out.append(f"- BERT-base training at length {top['seq_len']}, --use_amp --use_xla ({top['precision_name']}): "
                   f"{top['seq_per_s']:,.0f} sequences/s = {_fmt(share)}% of the dense half-precision peak "
                   f"(target ≥ 45%: {'met' if share and share >= 45 else 'NOT met'}); "
                   f"{top['seq_per_s'] / NVIDIA_V100_AMP_SEQ_PER_S:.1f}× NVIDIA's V100 AMP figure "
                   f"(target ≥ 6×: {'met' if top['seq_per_s'] >= 6 * NVIDIA_V100_AMP_SEQ_PER_S else 'NOT met'}).")
    ner = results.get("ner", {})
    f32, amp = ner.get("ours", {}).get("metrics", {}).get("f1"), ner.get("ours_amp", {}).get("metrics", {}).get("f1")
    if f32 is not None and amp is not None and not dry_run:
        ok = abs(f32 - amp) <= F1_TOLERANCE
        out.append(f"- NER devel F1: float32 {f32:.4f}, --use_amp --use_xla {amp:.4f} "
                   f"(within 0.5 point: {'yes' if ok else 'NO'}).")
    mirrored = results.get("mirrored", {})
    if "match" in mirrored:
        out.append(f"- Mirrored over {mirrored['devices']}: max weight difference "
                   f"{mirrored['max_abs_weight_diff']:.2e} after {mirrored['steps']} steps "
                   f"({'matches' if mirrored['match'] else 'DOES NOT match'} one replica).")
    return out


def render(results: Dict[str, Any], args: argparse.Namespace, command: str) -> str:
    """The GPU section of RESULTS.md."""
    device = results.get("device", {})
    names = [g["name"] for g in device.get("gpus", [])]
    peak = peak_for(names, args.peak_tflops)
    ner, predict = results.get("ner", {}), results.get("predict", {})
    lines = [BEGIN, "## GPU check" + (" (dry run on the CPU: toy sizes, figures mean nothing)" if args.dry_run else ""),
             "", f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} with `{command}`.", "",
             f"- nvidia-smi: {results.get('nvidia_smi', '?')}",
             f"- TensorFlow {device.get('tensorflow', '?')} (CUDA build: {device.get('built_with_cuda')}, "
             f"CUDA {device.get('cuda_version')}, cuDNN {device.get('cudnn_version')}); GPUs seen: "
             f"{', '.join(names) or 'none'}; dense half-precision peak used: {_fmt(peak, 0)} TFLOP/s", "",
             "### Training step (BERT-base shape, token classification)", "",
             *step_table(results.get("steps", {}), peak), "", "### NER epoch (BC5CDR, all-MiniLM-L6-v2)", ""]
    amp_label = "--use_amp" + ("" if args.dry_run else " --use_xla")
    for key, label in (("ours", "float32, no XLA"), ("ours_amp", amp_label)):
        run = ner.get(key, {})
        lines.append(f"- {label}: " + (f"{_fmt(run.get('epoch_seconds'))} s/epoch, devel F1 "
                                       f"{run['metrics']['f1']:.4f} ({run.get('precision')})" if "metrics" in run
                                       else run.get("skipped") or run.get("error") or ner.get("error")
                                       or _why_not_run(key, ner)))
    lines += ["", f"### Prediction (classifier, length {predict.get('max_seq_length', '?')}, {amp_label})", "",
              "- " + (f"{predict['examples_per_s']:,.0f} examples/s over {predict['examples']} examples "
                      f"({predict.get('precision')})" if "examples_per_s" in predict
                      else predict.get("skipped") or predict.get("error", "not run")),
              "", *engine_lines(results.get("engine", {})),
              "", "### Verdicts", "", *(verdicts(results, peak, args.dry_run) or ["- none could be judged"]),
              "", END]
    return "\n".join(lines) + "\n"


def engine_lines(engine: Dict[str, Any]) -> List[str]:
    """The inference engine's subsection: each engine's examples/s and, for ONNX Runtime, its probabilities'
    distance from TensorFlow float32's."""
    lines = [f"### Inference engine (ONNX Runtime {engine.get('onnxruntime', '?')}, classifier, length "
             f"{engine.get('max_seq_length', '?')}, engines interleaved)", ""]
    if "engines" not in engine:
        return lines + ["- " + (engine.get("skipped") or engine.get("error") or "not run")]
    lines.append(f"ONNX Runtime's providers: {', '.join(engine.get('providers', []))}.")
    lines.append("")
    for name, figures in engine["engines"].items():
        where = f" on {figures['device']}" if "device" in figures else ""
        closeness = (f"; largest probability change {figures['max_probability_change']:.2g}, labels agree "
                     f"{100 * figures['label_agreement']:.1f}%" if "label_agreement" in figures else "")
        lines.append(f"- {name}{where}: {_fmt(figures['examples_per_s_best'])} examples/s (best of "
                     f"{engine['repeats']}; {_fmt(figures['speedup_best'], 2)}x TensorFlow float32){closeness}")
    lines += [f"- {name}: {note}" for name, note in engine.items() if str(note).startswith("skipped")]
    return lines


def _why_not_run(key: str, ner: Dict[str, Any]) -> str:
    """Why a NER line has no figures: a dry run on a CPU without native bfloat16 trains in float32 only."""
    return "skipped: a CPU without native bfloat16" if key == "ours_amp" and "ours" in ner else "not run"


def write_section(path: str, section: str) -> None:
    """Replace the GPU section of a Markdown file (append it where there is none), atomically."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the steps, write the section; 0 when every step ran (targets are reported, not enforced)."""
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    results_path = args.results or (os.path.join(args.work_dir, "RESULTS.md") if args.dry_run
                                    else os.path.join(ROOT, "bench", "RESULTS.md"))
    timeout = args.timeout_s or (600.0 if args.dry_run else 240.0)
    command = "bash bench/gpu_check.sh " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    results = {"nvidia_smi": "skipped (dry run)" if args.dry_run else nvidia_smi()}
    results.update(run_steps(args, sizes(args.dry_run), timeout))
    section = render(results, args, command.strip())
    write_section(results_path, section)
    print(section)
    failed = [name for name, r in results.items() if isinstance(r, dict) and "error" in r]
    failed += [f"steps[{r['seq_len']},{r['precision_name']},xla={r['use_xla']}]"
               for r in results.get("steps", {}).get("runs", []) if "error" in r]
    if results.get("mirrored", {}).get("match") is False:
        failed.append("mirrored (weights differ)")
    log(f"wrote the GPU section of {results_path}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
