"""bench/RESULTS.md from the figures that run_bench.py collected (every figure is computed here
from results.json; nothing is typed in by hand)."""

from __future__ import annotations

import re
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.common import FLOPS_FORMULA, write_json


GPU_COMMAND = ("bash bench/gpu_check.sh   # the prepared check: XLA, float16/bfloat16, mirrored, prediction (~8 min)\n"
               "python bench/run_bench.py --cases step --use_xla --use_amp --seq_lens 128,256 --peak_tflops <peak>")
GPU_CHECK_BEGIN, GPU_CHECK_END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"
GEMM_OF_POLICY = {"mixed_float16": "tf_float16", "mixed_bfloat16": "tf_bfloat16"}
EXTRA = "extra"  # the verdict of a figure the issue does not set a target for (a variant beyond its comparison)
TARGETS = {
    "step": 1.5,  # ours / reference sequences/s
    "mfu": 0.6,  # model FLOP/s / GEMM FLOP/s
    "ner_speed": 2.5,  # reference wall time / ours
    "ner_f1": 0.01,  # |F1 difference|
    "prep_rate": 50_000.0,  # examples/s at the first size
    "prep_growth_mb": 200.0,  # peak RSS growth from the first to the last size
    "engine_int8_speed": 2.5,  # ONNX Runtime int8 / TensorFlow float32 examples/s
    "engine_int8_accuracy": 0.5,  # |accuracy difference| in points
}


# ----------------------------------------------------------------------------- small helpers


def _ok(result: Any) -> bool:
    return isinstance(result, dict) and bool(result) and "error" not in result and "skipped" not in result


def _why(result: Any) -> str:
    if not isinstance(result, dict):
        return "not run"
    return result.get("skipped") or result.get("error") or "not run"


def _f(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _mib_change(value: float) -> str:
    """A signed whole number of MiB ("+0", never "-0")."""
    return f"{round(value):+d}"  # round() gives an int, which has no -0


def _met(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _best(run: Dict[str, Any]) -> float:
    """Best (smallest) seconds per step over the timed repeats."""
    return min(run["step_seconds_each_repeat"])


def _median_estimate(side: Dict[str, Any], steps: int) -> Optional[float]:
    """Median seconds per step over groups of steps, times the steps: an epoch without the outliers."""
    groups = side.get("group_step_seconds") or []
    return statistics.median(groups) * steps if groups else None


# ----------------------------------------------------------------------------- step / MFU


def _gemm(step: Dict[str, Any], key: str) -> Optional[float]:
    g = step.get("gemm", {}).get(key)
    return g["flops"] if _ok(g) else None


def step_rows(step: Dict[str, Any], peak_tflops: Optional[float]) -> Tuple[List[str], Dict[str, Any]]:
    """Markdown of the step and MFU sections, and the figures the summary needs."""
    lines: List[str] = []
    figures: Dict[str, Any] = {}
    tf_gemm, torch_gemm = _gemm(step, "tf_float32"), _gemm(step, "torch_float32")
    size = step.get("gemm", {}).get("tf_float32", {}).get("size", 4096)
    lines.append(f"Machine GEMM rate ({size} x {size} float32, best of repeated runs): tf.matmul "
                 f"**{_f(tf_gemm and tf_gemm / 1e9, 1)} GFLOP/s**, torch.mm {_f(torch_gemm and torch_gemm / 1e9, 1)} "
                 f"GFLOP/s.")
    for dtype in ("float16", "bfloat16"):
        if _gemm(step, f"tf_{dtype}"):
            lines.append(f"{dtype} tf.matmul: {_f(_gemm(step, f'tf_{dtype}') / 1e9, 1)} GFLOP/s (the '/ tf GEMM' "
                         f"column below divides by this rate for the steps that run in mixed_{dtype}).")
    lines.append("")
    for seq_len, runs in step.get("runs", {}).items():
        ref = runs.get("reference")
        header = ["variant", "s/step best", "s/step median", "seq/s (best)", "model GFLOP/s (best)",
                  "/ tf GEMM", "vs reference (best)", "vs reference (median)", "warm-up s"]
        if peak_tflops:
            header.append("% of peak")
        rows = []
        for name, run in runs.items():
            if not _ok(run):
                rows.append([name, _why(run)] + [""] * (len(header) - 2))
                continue
            best, median = _best(run), run["step_seconds"]
            flops = run["model_flops_per_s"] * run["step_seconds"] / best
            gemm = _gemm(step, GEMM_OF_POLICY.get(run.get("policy"), "tf_float32")) or tf_gemm
            vs_best = _best(ref) / best if _ok(ref) else None
            vs_median = ref["step_seconds"] / median if _ok(ref) else None
            label = f"{name} ({run['policy']})" if run.get("policy", "float32") != "float32" else name
            row = [label, _f(best, 3), _f(median, 3), _f(step["shape"]["batch"] / best, 3), _f(flops / 1e9, 1),
                   _f(flops / gemm if gemm else None, 2), _f(vs_best, 2), _f(vs_median, 2),
                   _f(run.get("warmup_seconds"), 1)]
            if peak_tflops:
                row.append(_f(100 * flops / (peak_tflops * 1e12), 1))
            rows.append(row)
            if name != "reference":
                figures.setdefault(seq_len, {})[name] = {"ratio": vs_best, "ratio_median": vs_median,
                                                         "mfu": flops / gemm if gemm else None,
                                                         "policy": run.get("policy", "float32")}
        lines.append(f"Sequence length {seq_len}, batch {step['shape']['batch']}:")
        lines.append("")
        lines += _table(header, rows)
        if _ok(ref):
            lines.append(f"Reference: attention `{ref.get('attention')}`, {ref.get('threads')} threads, "
                         f"{ref.get('parameters'):,} trainable parameters (ours: "
                         f"{next((r['parameters'] for r in runs.values() if _ok(r) and 'policy' in r), 0):,}).")
            lines.append("")
    return lines, figures


# ----------------------------------------------------------------------------- NER


def ner_lines(ner: Dict[str, Any]) -> Tuple[List[str], Dict[str, Any]]:
    """Markdown of the NER epoch section and its summary figures."""
    if not _ok(ner):
        return [f"Not measured: {_why(ner)}", ""], {}
    ours, ref, amp = ner.get("ours", {}), ner.get("reference"), ner.get("ours_amp")
    steps_ours = ner["steps_per_epoch"]
    rows, figures = [], {}
    sides = [("ours (length buckets)", ours, steps_ours)]
    if amp is not None:
        sides.append((f"ours, --use_amp: {amp.get('precision', 'skipped')}", amp, steps_ours))
    sides.append(("reference (shuffled, pad to longest)", ref, (ref or {}).get("steps_per_epoch")))
    for name, side, steps in sides:
        if not _ok(side):
            rows.append([name, _why(side)] + [""] * 7)
            continue
        m = side.get("metrics", {})
        rows.append([name, _f(sum(side["epoch_seconds"]), 1), str(steps), _f(100 * side["padded_fraction"], 1) + " %",
                     _f(_median_estimate(side, steps * len(side["epoch_seconds"])), 1), _f(side.get("eval_seconds"), 1),
                     _f(100 * m.get("f1", 0), 2), _f(100 * m.get("precision", 0), 2), _f(100 * m.get("recall", 0), 2)])
    lines = [f"{ner['sentences']} training sentences (mean {ner['mean_row_length']:.1f} sub-tokens a row, "
             f"{ner['words_cut']} words cut at max_len), {ner['eval_sentences']} devel sentences, batch "
             f"{ner.get('batch_size', 16)}, max_len {ner.get('max_len', 128)}, buckets {ner['buckets']}, peak learning "
             f"rate {ner.get('learning_rate', '?')}, {len(ours.get('epoch_seconds') or [1])} epoch(s) each; "
             f"tokenization and windows {ner['featurize_seconds']:.1f} s.", ""]
    lines += _table(["side", "epoch wall s", "steps", "padded positions", "median-group estimate s",
                     "devel eval s", "devel F1 %", "P %", "R %"], rows)
    if _ok(ref) and ours.get("epoch_seconds"):
        wall = sum(ref["epoch_seconds"]) / sum(ours["epoch_seconds"])
        est_o = _median_estimate(ours, steps_ours * len(ours["epoch_seconds"]))
        est_r = _median_estimate(ref, ref["steps_per_epoch"] * len(ref["epoch_seconds"]))
        f1_gap = abs(ours["metrics"]["f1"] - ref["metrics"]["f1"]) if "metrics" in ref else None
        figures = {"speed": wall, "speed_median": est_r / est_o if est_o and est_r else None, "f1_gap": f1_gap,
                   "f1_ours": ours["metrics"]["f1"], "f1_ref": ref.get("metrics", {}).get("f1")}
        lines.append(f"Speed-up (reference wall time / ours): **{wall:.2f}x**; from the median step times "
                     f"(less sensitive to other processes): {_f(figures['speed_median'])}x. "
                     f"F1 gap: {_f(f1_gap and 100 * f1_gap)} points.")
        lines.append("")
        if _ok(amp) and amp.get("epoch_seconds"):
            est_a = _median_estimate(amp, steps_ours * len(amp["epoch_seconds"]))
            figures["amp"] = {"speed": sum(ref["epoch_seconds"]) / sum(amp["epoch_seconds"]),
                              "speed_median": est_r / est_a if est_a and est_r else None,
                              "f1": amp["metrics"]["f1"], "precision": amp["precision"]}
            lines.append(f"With `--use_amp` ({amp['precision']}), ours against the same float32 reference: "
                         f"**{figures['amp']['speed']:.2f}x** (median steps {_f(figures['amp']['speed_median'])}x), "
                         f"F1 {100 * amp['metrics']['f1']:.2f}. This is not the issue's like-for-like comparison "
                         "(the reference could use `torch.autocast('cpu', bfloat16)` too); it is what a user of this "
                         "CPU gets from the flag.")
            lines.append("")
    pipe = ner.get("pipeline", {})
    if pipe and ours.get("epoch_seconds"):
        steps_per_s = steps_ours * len(ours["epoch_seconds"]) / sum(ours["epoch_seconds"])
        lines.append(f"Input pipeline alone (ner.batches_dataset, no model): **{pipe['batches_per_s']:.0f} batches/s** "
                     f"vs {steps_per_s:.2f} training steps/s: the pipeline is "
                     f"{pipe['batches_per_s'] / steps_per_s:,.0f}x faster than the step, so the device never waits.")
        lines.append("")
    other = ner.get("other_padding", {})
    if other:
        lines.append("Padded positions of other batching schemes on the same rows: " + ", ".join(
            f"{k.replace('_', ' ')} {100 * v:.1f} %" for k, v in other.items()) + ".")
        lines.append("")
    return lines, figures


# ----------------------------------------------------------------------------- prep / predict


def prep_lines(prep: Dict[str, Any]) -> Tuple[List[str], Dict[str, Any]]:
    """Markdown of the data preparation section and its summary figures."""
    if not _ok(prep):
        return [f"Not measured: {_why(prep)}", ""], {}
    rows, sizes = [], prep.get("sizes", {})
    for n, r in sizes.items():
        if not _ok(r):
            rows.append([n, _why(r)] + [""] * 8)
            continue
        g = r["generated"]
        rows.append([f"{int(n):,}", f"{g['distinct_words']:,}", _f(g["bytes"] / 2 ** 20, 0), _f(r["seconds"], 1),
                     f"{r['examples_per_s']:,.0f}", _f(r["rss_before_mb"], 0), _f(r["peak_rss_mb"], 0),
                     _f(r["growth_mb"], 0), _f(r.get("workers_peak_rss_mb"), 0), _f(r["cache_mb"], 0)])
    lines = _table(["rows", "distinct words", "TSV MiB", "seconds", "examples/s", "RSS before MiB",
                    "peak RSS MiB", "growth MiB", "peak RSS of a featurizing worker MiB (incl. pages shared with the main process)", "cache MiB"], rows)
    ok = [r for r in sizes.values() if _ok(r)]
    figures: Dict[str, Any] = {}
    if ok:
        figures["rate"] = ok[0]["examples_per_s"]
        figures["workers"] = ok[0].get("workers")
    if len(ok) >= 2:
        figures["growth"] = ok[-1]["peak_rss_mb"] - ok[0]["peak_rss_mb"]
        figures["worker_growth"] = (ok[-1].get("workers_peak_rss_mb") or 0) - (ok[0].get("workers_peak_rss_mb") or 0)
        lines.append(f"Peak RSS growth from {int(list(sizes)[0]):,} to {int(list(sizes)[-1]):,} rows: main process "
                     f"**{_mib_change(figures['growth'])} MiB**, featurizing worker {_mib_change(figures['worker_growth'])} MiB.")
        lines.append("")
    serial = prep.get("one_process")
    if _ok(serial) and ok:
        lines.append(f"The first size featurized in one process (--featurize_workers=1): {serial['examples_per_s']:,.0f} "
                     f"examples/s; with {ok[0].get('workers')} featurizing processes: {ok[0]['examples_per_s']:,.0f} "
                     f"(fastest of {len(ok[0].get('all_seconds') or [1])} builds: "
                     f"{', '.join(_f(x, 1) for x in ok[0].get('all_seconds') or [])} s).")
        lines.append("")
        figures["serial_rate"] = serial["examples_per_s"]
    verify = prep.get("verify")
    if _ok(verify):
        lines.append(f"Parallel build check: the cache of the {verify['examples']} real examples built by 2 processes "
                     f"(128-row chunks) is {'identical' if verify['identical'] else 'NOT identical'} to the one "
                     f"built by 1.")
        lines.append("")
    return lines, figures


def predict_lines(pred: Dict[str, Any]) -> List[str]:
    """Markdown of the prediction section."""
    if not _ok(pred):
        return [f"Not measured: {_why(pred)}", ""]
    n, c = pred["ner"], pred["classifier"]
    return _table(["task", "input", "seconds", "throughput"], [
        ["NER ner.predict_words", f"{n['documents']:,} devel sentences, {n['words']:,} words, {n['windows']:,} windows",
         _f(n["seconds"], 1), f"**{n['words_per_s']:,.0f} words/s** ({n['words_per_s_with_prepare']:,.0f} with "
                              f"tokenization and windows, {n['prepare_seconds']:.1f} s)"],
        ["classifier predict_probabilities", f"{c['examples']:,} real examples at max_seq_length {c['max_seq_length']}",
         _f(c["seconds"], 1), f"**{c['examples_per_s']:,.1f} examples/s**"],
    ])


# ----------------------------------------------------------------------------- inference engine

ENGINE_INTRO = (
    "`python bench/inference_engine.py` (one run for the whole table): all-MiniLM-L6-v2 fine-tuned (pooling "
    "mention) on the first {train_rows} real consensus examples (a tenth of them as dev) at length {train_length}, "
    "{epochs:g} epochs; "
    "accuracy and macro-F1 on the other {examples} examples at length {length}, each engine predicting them with "
    "`run_classifier.py --do_predict --inference_engine=... --inference_precision=...`; speed: each engine's "
    "predict loop over the same {timed} examples (batch {batch}), the engines interleaved (A B C A B C ...) over "
    "{repeats} rounds after a warm-up batch, best and median round; demo corpus: data/demo/consensus/test.tsv as "
    "12 tagger shards (scripts/demo_published_pipeline.sh's layout) predicted by each engine, then the blocklists "
    "pipeline; changes are against TensorFlow float32."
)


def inference_engine_lines(engine: Dict[str, Any]) -> List[str]:
    """Markdown of the inference engine section (results.json's "inference_engine", bench/inference_engine.py)."""
    args, speed, accuracy, demo = engine["args"], engine.get("speed", {}), engine.get("accuracy", {}), engine.get("demo", {})
    names = list(dict.fromkeys(name for case in (speed.get("engines", {}), accuracy, demo) for name, value in case.items()
                               if isinstance(value, dict)))
    some = next(iter(accuracy.values()), {})
    lines = [ENGINE_INTRO.format(train_rows=args["train_rows"], train_length=args["train_length"],
                                 epochs=args["epochs"], examples=some.get("examples", "?"),
                                 length=args["max_seq_length"], timed=speed.get("examples", "?"),
                                 batch=args["batch_size"], repeats=args["repeats"]), "",
             f"* Command: `{engine['command']}`; date {engine['date']}; {engine['machine']['cpu']}, "
             f"{engine['machine']['cores']} cores; " + ", ".join(f"{k} {v}" for k, v in engine["machine"]["versions"].items()),
             f"* float32 2048^2 tf.matmul: {engine['gemm_before']['flops'] / 1e9:.1f} GFLOP/s before, "
             f"{engine['gemm_after']['flops'] / 1e9:.1f} after (best of repeated runs); load average (1/5/15 min) "
             f"before {engine['load_before']}, after {engine['load_after']}" + (
                 ". **The machine was shared with other busy processes**: absolute rates are depressed and noisy; "
                 "the interleaved rounds keep the ratios between engines comparable." if _engine_shared(engine) else ""),
             ""]
    rows = []
    for name in names:
        s, a, d = speed.get("engines", {}).get(name, {}), accuracy.get(name, {}), demo.get(name, {})
        rows.append([name, f"{_f(s.get('examples_per_s_best'), 1)} / {_f(s.get('examples_per_s_median'), 1)}",
                     f"**{_f(s.get('speedup_best'))}x** / {_f(s.get('speedup_median'))}x",
                     _f(a.get("accuracy")), _f(a.get("macro_f1")), _g(a.get("max_probability_change")),
                     str(a.get("labels_changed", "—")), _g(d.get("max_probability_change")),
                     str(d.get("labels_changed", "—")), str(d.get("blocklist_entries_changed", "—"))])
    lines += _table(["engine", "examples/s best / median", "x TF float32 best / median", "accuracy %", "macro-F1 %",
                     "largest prob. change", "labels changed", "demo: largest prob. change", "demo: labels changed",
                     "demo: blocklist entries changed"], rows)
    return lines + profile_lines(engine.get("profile", {})) + engine_ratios(speed, accuracy)


def profile_lines(profile: Dict[str, Any]) -> List[str]:
    """Each ONNX Runtime precision's time by operator type (the profiled pass), largest first."""
    lines = []
    for precision, figures in profile.items():
        if not isinstance(figures, dict) or "share_by_op" not in figures:
            continue
        shares = [f"{op} {100 * share:.0f}%" for op, share in figures["share_by_op"].items() if share >= 0.005]
        lines.append(f"* ONNX Runtime {precision}, where its time goes (one profiled pass over the "
                     f"{figures['examples']} timed examples, {figures['kernel_seconds']:.1f} s of kernels): "
                     + ", ".join(shares))
    int8 = profile.get("int8", {}).get("share_by_op")
    if int8:
        integer_ops = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "DynamicQuantizeLinear",
                       "QAttention")
        floating = sum(share for op, share in int8.items() if op not in integer_ops)
        lines.append(f"* What bounds int8: {100 * floating:.0f}% of its kernel time is in operators that compute in "
                     f"float32 whatever the precision (LayerNorm with the residual, GELU, the last layer's attention, "
                     f"the embeddings), and QAttention's {100 * int8.get('QAttention', 0):.0f}% includes the float32 "
                     "attention scores, softmax and context products (only its Q/K/V projection is int8); only the "
                     "rest gets faster with int8 arithmetic.")
    return lines + [""] if lines else []


def per_tensor_lines(earlier: Optional[Dict[str, Any]]) -> List[str]:
    """One line on the earlier run of the same bench with int8 weights quantized per tensor (why per channel)."""
    if not _ok(earlier) or "onnxruntime int8" not in earlier.get("accuracy", {}):
        return []
    int8, base = earlier["accuracy"]["onnxruntime int8"], earlier["accuracy"]["tensorflow float32"]
    demo = earlier.get("demo", {}).get("onnxruntime int8", {})
    return [f"An earlier run of the same command ({earlier['date']}) quantized the int8 weights with one scale per "
            f"tensor: accuracy {_f(int8['accuracy'])}% against {_f(base['accuracy'])}%, {int8['labels_changed']} of "
            f"{int8['examples']} labels changed, probabilities moved by up to {_g(int8['max_probability_change'])}, "
            f"{demo.get('blocklist_entries_changed', '?')} demo blocklist entries changed; int8 "
            f"{_f(earlier['speed']['engines']['onnxruntime int8']['speedup_best'])}x TensorFlow float32 (best round). "
            "The engine quantizes per output channel since (bench/inference_engine_per_tensor.json).", ""]


def _g(value: Optional[float]) -> str:
    """A small figure in two significant digits (0 as 0)."""
    return "-" if value is None else f"{value:.2g}"


def _engine_shared(engine: Dict[str, Any]) -> bool:
    """Whether the 1-minute load exceeded the cores by more than half a core at some point of the run."""
    loads = _loads(engine) + engine["load_before"][:1] + engine["load_after"][:1]
    return max(loads, default=0) > engine["machine"]["cores"] + 0.5


def engine_ratios(speed: Dict[str, Any], accuracy: Dict[str, Any]) -> List[str]:
    """int8 against TensorFlow float32: examples/s and accuracy."""
    int8, base = speed.get("engines", {}).get("onnxruntime int8"), accuracy.get("tensorflow float32")
    if not int8 or not base or "onnxruntime int8" not in accuracy:
        return []
    gap = abs(accuracy["onnxruntime int8"]["accuracy"] - base["accuracy"])
    return [f"ONNX Runtime int8 / TensorFlow float32: {_f(int8['speedup_best'])}x the examples/s (best round), "
            f"{_f(int8['speedup_median'])}x (median round); accuracy {gap:.2f} points apart.", ""]


# ----------------------------------------------------------------------------- distilled student



def distill_lines(d: Dict[str, Any]) -> List[str]:
    """Markdown of the distilled-student table (bench/distill.py)."""
    if not d:
        return ["Not measured: run `python bench/distill.py --work_dir=DIR` and add its JSON under "
                "\"distillation\" in results.json.", ""]
    t, s, demo = d["test"]["teacher"], d["test"]["student"], d["demo_corpus"]
    speed, drop = s["examples_per_s"] / t["examples_per_s"], 100.0 * (t["accuracy"] - s["accuracy"])
    rows = [[f"{name} ({m['layers']} layers)", f"{m['examples_per_s']:.2f}", f"{m['accuracy']:.4f}",
             f"{m['macro_f1']:.4f}", f"{m['gflop_per_example']:.2f}", f"{m['model_gflops']:.1f}"]
            for name, m in (("teacher", t), ("student", s))]
    lists = demo["lists"]
    changed = sum(v["only_raw"] + v["only_other"] for v in lists.values())
    cfg = d["settings"]
    return [f"Command: `{d['command']}`. Machine: {d['machine']['cpu']}, {d['machine']['cores']} cores, shared "
            f"with other jobs (load average {d['load_before'][0]:.1f} before, "
            f"{d['load_after'][0]:.1f} after), so both models were timed in turns in one process "
            f"(best of {len(t['examples_per_s_passes'])} passes each); float32 2048^2 tf.matmul "
            f"{d['gemm_gflops_before']:.1f} GFLOP/s before, {d['gemm_gflops_after']:.1f} after. max_seq_length "
            f"{cfg['max_seq_length']}; teacher: all-MiniLM-L6-v2 fine-tuned {cfg['teacher_epochs']:g} epoch(s) on "
            f"the consensus examples' train split; student: {cfg['student_layers']} of its layers, distilled "
            f"{cfg['student_epochs']:g} epoch(s) on the demo corpus contexts (soft targets) and the train split's "
            f"rows (1 in {cfg.get('student_train_every', 1)}; soft targets and labels); {t['test_examples']} test "
            "examples.", ""
            ] + _table(["model", "examples/s", "accuracy", "macro F1", "GFLOP/example", "model GFLOP/s"], rows) + [
        f"Student / teacher: **{speed:.2f}x** the examples/s, accuracy {drop:.1f} points lower; the "
        f"forward FLOPs' ratio is {t['gflop_per_example'] / s['gflop_per_example']:.2f}x, the bound on the speed-up "
        "of a compute-bound model.", "",
        f"Demo corpus ({demo['predictions']['rows']} contexts, 12 shards, blocklists pipeline): largest probability "
        f"change {demo['predictions']['max_probability_difference']:.4f}, labels changed "
        f"{demo['predictions']['labels_flipped']}; blocklist lines that differ: {changed} ("
        + ", ".join(f"{name}: {v['raw']} teacher / {v['other']} student lines, {v['only_raw']} only the teacher's, "
                    f"{v['only_other']} only the student's" for name, v in lists.items()) + ").", ""]


# ----------------------------------------------------------------------------- whole report


def _figure(target: str) -> str:
    """A summary row's figure without the threshold bench/run_bench.py checks it against."""
    return re.sub(r"\s+(>=\s+[\d.,]+|<\s+[\d.,]+ MiB|within \d+ points?)$", "", target)


def summary_rows(step_fig: Dict[str, Any], ner_fig: Dict[str, Any], prep_fig: Dict[str, Any]) -> List[List[str]]:
    """Target, measured value and verdict per target."""
    rows = []
    for seq_len, variants in step_fig.items():
        for name, v in variants.items():
            extra = name.endswith("_amp")  # ours in bfloat16 against the float32 reference: beyond the issue
            label = f"{name} ({v['policy']}, against a float32 reference)" if extra else name
            rows.append([f"step seq {seq_len}, {label}: ours / reference seq/s >= {TARGETS['step']}",
                         f"{_f(v['ratio'])}x best (median {_f(v['ratio_median'])}x)",
                         EXTRA if extra else _met(None if v["ratio"] is None else v["ratio"] >= TARGETS["step"])])
            rows.append([f"step seq {seq_len}, {label}: model FLOP/s / GEMM of its dtype >= {TARGETS['mfu']}",
                         _f(v["mfu"]), EXTRA if extra else _met(None if v["mfu"] is None else v["mfu"] >= TARGETS["mfu"])])
    if ner_fig:
        rows.append([f"NER epoch: reference / ours wall time >= {TARGETS['ner_speed']}",
                     f"{_f(ner_fig['speed'])}x (median steps {_f(ner_fig['speed_median'])}x)",
                     _met(ner_fig["speed"] >= TARGETS["ner_speed"])])
        if ner_fig.get("f1_gap") is not None:
            rows.append(["NER devel F1 within 1 point",
                         f"ours {100 * ner_fig['f1_ours']:.2f}, reference {100 * ner_fig['f1_ref']:.2f}",
                         _met(ner_fig["f1_gap"] <= TARGETS["ner_f1"])])
        if ner_fig.get("amp"):
            amp = ner_fig["amp"]
            rows.append([f"NER epoch, ours with --use_amp ({amp['precision']}) against the float32 reference: "
                         f"wall time ratio, and devel F1", f"{_f(amp['speed'])}x (median steps "
                         f"{_f(amp['speed_median'])}x); F1 {100 * amp['f1']:.2f}", EXTRA])
    if "rate" in prep_fig:
        rows.append([f"prep examples/s at the first size >= {TARGETS['prep_rate']:,.0f}",
                     f"{prep_fig['rate']:,.0f} ({prep_fig.get('workers')} featurizing processes"
                     + (f"; {prep_fig['serial_rate']:,.0f} in one)" if "serial_rate" in prep_fig else ")"),
                     _met(prep_fig["rate"] >= TARGETS["prep_rate"])])
    if "growth" in prep_fig:
        rows.append([f"prep peak RSS growth < {TARGETS['prep_growth_mb']:.0f} MiB",
                     f"{_mib_change(prep_fig['growth'])} MiB (worker {_mib_change(prep_fig['worker_growth'])} MiB)",
                     _met(max(prep_fig["growth"], prep_fig["worker_growth"]) < TARGETS["prep_growth_mb"])])
    return rows


def _loads(value: Any) -> List[float]:
    """Every 1-minute load average recorded by the workers (before and after each one)."""
    found: List[float] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("load_before", "load_after") and isinstance(item, list) and item:
                found.append(float(item[0]))
            else:
                found += _loads(item)
    return found


def _case_minutes(cases: Dict[str, Any]) -> str:
    return ", ".join(f"{name} {result.get('case_seconds', 0) / 60:.1f} min" for name, result in cases.items())


STEP_INTRO = (
    "{layers} layers, hidden {hidden}, {heads} heads, intermediate {intermediate}, vocabulary {vocab:,}, "
    "{labels} labels, random init, {precision}, dropout 0.1, exact GELU; one fixed random batch (all positions "
    "real and labelled). Ours: keras-hub BertBackbone + `models.build_token_classifier`, "
    "`optimization.make_optimizer('adamw')`, `Trainer.fit` (dense gradients, global-norm clip 1.0), timed per "
    "epoch of `--step_steps` steps after a warm-up epoch. Reference: transformers `BertForTokenClassification` "
    "(default attention), `torch.optim.AdamW` (no decay on biases/LayerNorm), cross-entropy, `loss.backward()`, "
    "`clip_grad_norm_(1.0)`, `step()`, `loss.item()` each step. 'best' is the fastest timed repeat, 'median' "
    "the median one."
)
NER_INTRO = (
    "Both sides train on the same rows (our tokenization, truncated to max_len sub-tokens), with AdamW "
    "(weight decay 0.01, none on biases/LayerNorm, eps 1e-6), linear warm-up over 20% of the epoch then linear "
    "decay, clip 1.0, dropout 0.1. Ours: `ner.make_batches` (length buckets, shuffled) + `ner.batches_dataset` + "
    "`Trainer.fit` (wall time includes tracing). Reference: shuffle, batch, pad each batch to its longest row. "
    "F1: both scored by `ner.WindowCollector` + `metrics.ner_metrics` (conlleval, seqeval default mode) on "
    "BC5CDR devel windows. The median-group estimate is the median seconds per step over groups of 10 steps "
    "times the steps, which discounts stalls caused by other processes."
)
PREP_INTRO = (
    "`classifier.build_features` (read and validate the TSV, tokenize, featurize, write the cache) on generated "
    "consensus rows at max_seq_length {length}, all-MiniLM-L6-v2 vocabulary, each size in a fresh process. Rows "
    "are made from the real examples: contexts' words rotated and ~4% replaced by synthetic words drawn from a "
    "Zipf distribution (exponent 1.25) over an unbounded pool, so the vocabulary keeps growing with the rows, "
    "ever more slowly, as in PubMed text. Memory: VmRSS before the build, VmHWM after (main process); the "
    "featurizing worker's peak from getrusage(RUSAGE_CHILDREN)."
)
GPU_NOTE = (
    "(`--use_amp`: `keras.mixed_precision.set_global_policy('mixed_float16')` before the model is built and "
    "`Trainer(loss_scale=True)`; the reference uses `torch.autocast(float16)` + `GradScaler`; `--peak_tflops` "
    "adds the % of the device's peak.)"
)


def _shared(results: Dict[str, Any]) -> bool:
    """Whether other processes kept the machine busy: a 1-minute load above the cores (which the bench's
    own threads fill) by more than half a core at some point."""
    loads = _loads(results["cases"]) + results["load_before"][:1] + results["load_after"][:1]
    return max(loads, default=0) > results["machine"]["cores"] + 0.5


def header(results: Dict[str, Any]) -> List[str]:
    """Title, command, date, machine, versions and load."""
    cases, machine = results["cases"], results["machine"]
    loads = _loads(cases)
    lines = [
        "# bert-tf benchmarks", "",
        "Generated by `bench/run_bench.py` (`make bench`) and `python -m bench.report`; every figure below comes "
        "from `bench/results.json`: sections 1-5 from the `make bench` run described here, sections 6-9 from the "
        "separate benches they name (each with its command, machine and GEMM rate), added with "
        "`python -m bench.report --add KEY=FILE.json`.", "",
        f"* Command: `{results['command']}`",
        f"* Date: {results['date']}; total {results['total_seconds'] / 60:.1f} min ({_case_minutes(cases)})",
        f"* Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB memory, "
        f"GPU: {machine['gpu']}",
        "* Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        f"* Load average (1/5/15 min) before: {results['load_before']}, after: {results['load_after']}; "
        f"1-minute load around the workers: {min(loads, default=0):.1f} to {max(loads, default=0):.1f}."
        + (" **The machine was shared with other busy processes during this run**: wall times are inflated, "
           "more for some steps than others; the 'best' and 'median' figures are given beside the raw ones "
           "for that reason." if _shared(results) else ""),
        "",
    ]
    return lines


def build(results: Dict[str, Any], notes: str = "") -> Tuple[str, List[List[str]]]:
    """The RESULTS.md text and the summary rows."""
    cases, args = results["cases"], results["args"]
    step_md, step_fig = step_rows(cases["step"], args.get("peak_tflops")) if _ok(cases.get("step")) else (
        [f"Not measured: {_why(cases.get('step'))}", ""], {})
    ner_md, ner_fig = ner_lines(cases.get("ner", {}))
    prep_md, prep_fig = prep_lines(cases.get("prep", {}))
    rows = summary_rows(step_fig, ner_fig, prep_fig)
    out = header(results) + ["## Summary", ""] + _table(["figure", "measured"], [[_figure(r[0]), r[1]] for r in rows])
    if notes:
        out += ["How these figures were arrived at, the settings tried and how far each can be trusted on this "
                "machine: [NOTES.md](NOTES.md).", ""]
    precision = "mixed_float16" if args.get("use_amp") else "float32"
    out += ["## 1-2. Training step, and model FLOP/s", "",
            STEP_INTRO.format(precision=precision, labels=args.get("num_labels"),
                              **{k: args.get(k) for k in ("layers", "hidden", "heads", "intermediate", "vocab")}), "",
            f"FLOPs: {FLOPS_FORMULA}, with s = sequence length, h = hidden, i = intermediate, L = layers, "
            "C = labels; model FLOP/s = FLOPs per step / seconds per step; MFU here = model FLOP/s / the "
            "tf.matmul rate measured in the same run.", ""]
    out += step_md
    out += ["## 3. One NER training epoch on BC5CDR (all-MiniLM-L6-v2)", "", NER_INTRO, ""] + ner_md
    out += ["## 4. Classifier data preparation", "", PREP_INTRO.format(length=args.get("prep_max_seq_length")), ""]
    out += prep_md
    out += ["## 5. Prediction throughput (all-MiniLM-L6-v2, untrained heads, after a warm-up)", ""]
    out += predict_lines(cases.get("predict", {}))
    if _ok(results.get("inference_engine")):
        out += ["## 6. Inference engines: TensorFlow and ONNX Runtime (float32, int8) for classifier prediction", ""]
        out += inference_engine_lines(results["inference_engine"])
        out += per_tensor_lines(results.get("inference_engine_per_tensor"))
    out += ["## 7. Distilled student (bench/distill.py)", ""] + distill_lines(results.get("distillation", {}))
    out += ["## 8. Masked-LM training step against transformers (bench/mlm_step.py)", ""]
    out += mlm_step_lines(results.get("mlm_step", {}))
    if results.get("mlm_step_xla"):
        out += ["Ours compiled with XLA (`--use_xla`), the same command with `--use_xla`:", ""]
        out += mlm_step_lines(results["mlm_step_xla"])[2:]
    out += ["## 9. Continued pretraining, then NER (bench/pretraining_ner.py)", ""]
    out += pretraining_ner_lines(results.get("pretraining_ner", {}))
    if results["machine"]["gpu"] == "none":
        out += ["## GPU", "", "No GPU was available to this run, so no GPU figures are measured "
                "here. On a GPU machine run:", "", "```", GPU_COMMAND, "```", "", GPU_NOTE, ""]
    return "\n".join(out), rows


MLM_STEP_INTRO = (
    "BERT-base (12 layers, hidden 768, vocabulary 30,522), random weights, one fixed random batch, float32, AdamW "
    "with gradient clipping at 1.0: run_pretraining.py's model and training step against transformers "
    "`BertForMaskedLM` + torch AdamW, each in its own process. Ours computes the head's logits at the masked "
    "positions only (as Google's and NVIDIA's pretraining do); `BertForMaskedLM` computes them at every position "
    "and masks the loss, so the model FLOPs below are the same count for both (the masked positions' head)."
)


def mlm_step_lines(d: Dict[str, Any]) -> List[str]:
    """Markdown of the masked-LM step against transformers (results.json's "mlm_step", bench/mlm_step.py)."""
    if not d:
        return ["Not measured: run `python bench/mlm_step.py` in the bench environment and add its JSON with "
                "`python -m bench.report --add mlm_step=bench/mlm_step.json`.", ""]
    shape, ours, ref = d["shape"], d["ours"], d["reference"]
    rates = {k: d[k]["flops"] / 1e9 for k in ("gemm_before", "gemm_after", "torch_gemm_before", "torch_gemm_after")
             if _ok(d.get(k))}
    own_gemm = {"ours": max(rates.get("gemm_before", 0), rates.get("gemm_after", 0)) or None,
                "reference": max(rates.get("torch_gemm_before", 0), rates.get("torch_gemm_after", 0)) or None}
    rows = [[name, f"{m['seq_per_s']:.3f}", f"{m['step_seconds']:.2f}", f"{m['model_flops_per_s'] / 1e9:.1f}",
             _f(own_gemm[side] and m["model_flops_per_s"] / 1e9 / own_gemm[side])]
            for side, name, m in (("ours", "bert-tf (run_pretraining.py's step)", ours),
                                  ("reference", "transformers BertForMaskedLM + torch AdamW", ref))]
    return [MLM_STEP_INTRO, "",
            f"* Command: `{d.get('command', 'python bench/mlm_step.py')}`; batch {shape['batch']} x "
            f"{shape['seq_len']}, {shape['predictions']} masked positions a sequence, {shape['warmup']} warm-up steps, "
            f"then {shape['repeats']} repeats of {shape['steps']} timed steps (the median repeat)",
            f"* Machine: {d['machine']['cpu']}; " + ", ".join(f"{k} {v}" for k, v in d["packages"].items()),
            f"* float32 2048^2 in the same run, before / after both sides: tf.matmul "
            f"{_f(rates.get('gemm_before'), 1)} / {_f(rates.get('gemm_after'), 1)} GFLOP/s, torch.mm "
            f"{_f(rates.get('torch_gemm_before'), 1)} / {_f(rates.get('torch_gemm_after'), 1)} GFLOP/s; load "
            f"average before {d['machine']['load_before']}", ""
            ] + _table(["side", "sequences/s", "s/step", "model GFLOP/s", "/ its framework's best GEMM rate"], rows) + [
        f"bert-tf / transformers: **{d['ratio']:.2f}x** the sequences/s.", ""]


def _effect(arm: Dict[str, Any], base: Dict[str, Any]) -> str:
    """Mean F1 difference from `base` in points, with its standard error (Welch) and the per-seed differences."""
    a = [100 * r["f1"] for r in arm["ner"]]
    b = [100 * r["f1"] for r in base["ner"]]
    if len(a) < 2 or len(b) < 2:
        return "-"
    difference = statistics.mean(a) - statistics.mean(b)
    error = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    by_seed = {r["seed"]: 100 * r["f1"] for r in base["ner"]}
    paired = [100 * r["f1"] - by_seed[r["seed"]] for r in arm["ner"] if r["seed"] in by_seed]
    return (f"{difference:+.2f} ± {error:.2f}" + (f" (per seed: {', '.join(f'{p:+.2f}' for p in paired)})"
                                                   if paired else ""))


def pretraining_ner_table(arms: List[Dict[str, Any]], base: Optional[Dict[str, Any]] = None) -> List[str]:
    """The arms of one bench/pretraining_ner.py measurement; the effect against `base` (default: the 0-step arm)."""
    base = base or next((a for a in arms if a["steps"] == 0), None)
    rows = []
    for a in [a for a in arms if a["ner"]]:
        seeds = ", ".join(f"{100 * run['f1']:.2f}" for run in a["ner"])
        spread = f" ± {100 * a['f1_std']:.2f}" if a.get("f1_std") is not None else ""
        ner_seconds = sum(run["seconds"] for run in a["ner"]) / len(a["ner"])
        rows.append([str(a["steps"]), _f(a.get("perplexity"), 1), _f(a.get("accuracy"), 3), seeds,
                     f"{100 * a['f1_mean']:.2f}{spread}",
                     "-" if base is None or a is base else _effect(a, base),
                     f"{a.get('pretrain_seconds', 0):.0f}", f"{ner_seconds:.0f}"])
    return _table(["masked-LM steps", "held-out perplexity", "held-out MLM accuracy",
                   "test F1 per seed (" + ", ".join(str(r["seed"]) for r in arms[0]["ner"]) + ")" if arms and
                   arms[0]["ner"] else "test F1 per seed", "mean ± sd", "difference from the base, ± its error",
                   "pretraining s", "NER s (mean)"], rows)


PRETRAINING_NER_INTRO = (
    "all-MiniLM-L6-v2 (which ships without a masked-LM head) continued with run_pretraining.py on the NER data "
    "set's own training text (tags dropped), then fine-tuned with run_ner.py, once a seed, the same seeds in every "
    "arm. The stages continue each other (100, then 200 more to 300, then 700 more to 1,000), each with its own "
    "warm-up and decay. Perplexity and accuracy: the pretraining runs' held-out documents. F1: entity-level "
    "(conlleval) on the whole dev/devel split, the model of the best validation epoch. The difference from the base "
    "model is the difference of the means with its standard error (Welch: the root of the two variances over "
    "their seeds), and per seed. Wall times: most of the runs shared the 2 cores with another job (bench/NOTES.md, session 11 says which)."
)


def pretraining_ner_lines(measurements: Dict[str, Dict[str, Any]]) -> List[str]:
    """Markdown of the continued-pretraining measurements (results.json's "pretraining_ner",
    bench/pretraining_ner.py): one table each, an arm without the head warm-up set against the arm with it."""
    if not measurements:
        return ["Not measured: run `python bench/pretraining_ner.py` and add its JSON with "
                "`python -m bench.report --add pretraining_ner.NAME=bench/pretraining_ner.json`.", ""]
    lines = [PRETRAINING_NER_INTRO, ""]
    with_warmup = {m["args"]["dataset"]: m for m in measurements.values() if m["args"].get("head_warmup_steps") is None}
    for name, m in measurements.items():
        args = m["args"]
        warmup = ("the head warm-up off (`--head_warmup_steps=0`)" if args.get("head_warmup_steps") == 0 else
                  "the default head warm-up (10% of the first stage's steps)" if args.get("head_warmup_steps") is None
                  else f"`--head_warmup_steps={args['head_warmup_steps']}`")
        lines += [f"### {name}", "",
                  f"* Command: `{m.get('command', 'python bench/pretraining_ner.py')}`",
                  f"* Machine: {m['cpu']}, float32 2048^2 tf.matmul {m['gemm_gflops']:.1f} GFLOP/s at the start",
                  f"* Pretraining: batch {args['pretrain_batch']} x {args['pretrain_len']}, AdamW, peak rate "
                  f"{args['pretrain_lr']:g}, warm-up 10% of each stage, {warmup}",
                  f"* NER: {args['ner_sentences']:,} training sentences (whole documents, seeded), 500 validation, "
                  f"{args['ner_epochs']} epochs, rate {args['ner_lr']:g}, batch {args['ner_batch']}, max_len "
                  f"{args['ner_max_len']} (flags/ner_quick.flags otherwise)", ""]
        base = None
        if args.get("skip_base") and args["dataset"] in with_warmup and with_warmup[args["dataset"]] is not m:
            reference = with_warmup[args["dataset"]]
            lines += [f"Set against the arm with the same steps of the measurement with the head warm-up; its "
                      "difference column is this arm minus that one.", ""]
            for arm in m["arms"]:
                twin = next((a for a in reference["arms"] if a["steps"] == arm["steps"] and a["ner"]), None)
                if twin:
                    labelled = dict(twin, steps=f"{twin['steps']} (with the head warm-up)")
                    lines += pretraining_ner_table([labelled, arm], labelled)
            continue
        lines += pretraining_ner_table(m["arms"], base)
        if m.get("plot"):
            lines += [f"![F1 and perplexity against masked-LM steps]({m['plot']})", ""]
    return lines


def add(results_path: str, entries: Sequence[str]) -> Dict[str, Any]:
    """Put each KEY=FILE.json (KEY may be a.b for a nested key) into results.json; the updated results."""
    import json

    results = json.load(open(results_path, encoding="utf-8"))
    for entry in entries:
        key, _, path = entry.partition("=")
        if not path:
            raise SystemExit(f"--add {entry}: expected KEY=FILE.json")
        *parents, last = key.split(".")
        node = results
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = json.load(open(path, encoding="utf-8"))
    write_json(results_path, results)
    return results


def write(results: Dict[str, Any], path: str, notes_path: Optional[str] = None) -> None:
    """Write RESULTS.md (with bench/NOTES.md appended as the analysis when it exists)."""
    import os

    notes_path = notes_path or os.path.join(os.path.dirname(path), "NOTES.md")
    notes = open(notes_path, encoding="utf-8").read() if os.path.isfile(notes_path) else ""
    text, _ = build(results, notes)
    old = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    if GPU_CHECK_BEGIN in old and GPU_CHECK_END in old:  # bench/gpu_check.sh's section survives a CPU re-run
        section = old[old.index(GPU_CHECK_BEGIN):old.index(GPU_CHECK_END) + len(GPU_CHECK_END)]
        cut = text.find("## Notes")
        text = (text[:cut] + section + "\n\n" + text[cut:]) if cut >= 0 else text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def summary(results: Dict[str, Any]) -> str:
    """The targets table as plain text, for the terminal."""
    _, rows = build(results)
    return "\n".join(f"{verdict.strip('*'):>8}  {target}: {measured}" for target, measured, verdict in rows)


def main(argv: Optional[List[str]] = None) -> None:
    """`python -m bench.report [--add KEY=FILE.json ...]`: results.json's other benches in, RESULTS.md out."""
    import argparse
    import json
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--add", action="append", default=[], help="KEY=FILE.json: a bench's JSON under KEY")
    p.add_argument("--results", default=os.path.join(here, "RESULTS.md"))
    args = p.parse_args(argv)
    json_path = os.path.join(os.path.dirname(os.path.abspath(args.results)), "results.json")
    results = add(json_path, args.add) if args.add else json.load(open(json_path, encoding="utf-8"))
    write(results, args.results)


if __name__ == "__main__":
    main()
