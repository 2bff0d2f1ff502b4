#!/usr/bin/env python
"""Summarise a fine-tuning grid made by scripts/run_finetuning_grid.sh.

    python scripts/grid_report.py RUNS_DIR [--metric accuracy] [--minimize] [--out PREFIX]

Finds every run directory under RUNS_DIR (one holding run.flags or eval_results.json), reads the
run's configuration from run.flags (model name = the directory two levels above the run,
max_seq_length, train_batch_size, learning_rate, num_train_epochs, seed) and the metric from
eval_results.json (a dotted path, e.g. accuracy, macro.f1, per_class.ggp.f1). The default is accuracy,
which for single-label classification equals the micro-averaged F1 the published grid reported (94.93);
macro F1 is shown beside it (--metric=macro.f1 ranks by it instead).
Runs are grouped by configuration (everything but the seed); each group gets the mean and the
standard deviation of the metric over its repetitions, and the means of accuracy, macro F1 and
loss. Best configuration first (highest metric, lowest with --minimize). The standard deviation is the
sample one (n - 1) unless --std=population, the published scripts/get_stat.py's np.std (n): for 3
repetitions the population figure is sqrt(2/3) = 0.816 of the sample one. The report says which.

Writes PREFIX.csv, PREFIX.md (Markdown table, mean ± std and n, plus the failed runs) and
PREFIX_heatmap.png (learning rate x epochs of the mean metric, one panel per model, maximum
sequence length and batch size, the best cell of each panel outlined) and report.html beside them
(the table, the heatmap and the failed runs on one self-contained page); PREFIX defaults to
RUNS_DIR/grid_report. Prints the Markdown. Runs without a readable eval_results.json or
run.flags are listed as failed. Bad input (no RUNS_DIR, no runs) prints 'error: ...', exit 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert_tf import html_report  # noqa: E402
from bert_tf.errors import InputError  # noqa: E402
from bert_tf.io_utils import atomic_path, write_text_atomic  # noqa: E402

FLAGFILE = "run.flags"
RESULTS = "eval_results.json"
CONFIG_FLAGS = ("max_seq_length", "train_batch_size", "learning_rate", "num_train_epochs")
SKIPPED_DIRS = ("feature_cache",)

ConfigKey = Tuple[str, str, str, str, str]  # model, max_seq_length, batch, learning rate, epochs


# ----------------------------------------------------------------------------- reading runs


@dataclass
class Run:
    """One run directory: its configuration and scores, or why it failed."""

    path: str
    key: Optional[ConfigKey] = None
    seed: str = ""
    metric: Optional[float] = None
    accuracy: Optional[float] = None
    macro_f1: Optional[float] = None
    loss: Optional[float] = None
    failure: str = ""


def parse_flagfile(path: str) -> Dict[str, str]:
    """The --name=value flags of an absl flagfile; a bare --name gives 'true'; comments skipped."""
    flags: Dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, _, value = line[2:].partition("=")
            flags[name] = value if "=" in line else "true"
    return flags


def lookup(results: Any, dotted: str) -> Optional[float]:
    """The finite number at a dotted path of a JSON object, or None when there is none."""
    value = results
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def config_of(run_dir: str, flags: Dict[str, str]) -> ConfigKey:
    """The configuration key of a run: model name (two directories up) and the grid flags."""
    model = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(run_dir))))
    return (model, *(flags[name] for name in CONFIG_FLAGS))  # type: ignore[return-value]


def read_run(run_dir: str, metric: str) -> Run:
    """Read one run directory; problems are recorded in Run.failure instead of raised."""
    run = Run(run_dir)
    flags_path, results_path = os.path.join(run_dir, FLAGFILE), os.path.join(run_dir, RESULTS)
    try:
        flags = parse_flagfile(flags_path)
        missing = [name for name in CONFIG_FLAGS if name not in flags]
        if missing:
            run.failure = f"{FLAGFILE} lacks --{', --'.join(missing)}"
            return run
        run.key, run.seed = config_of(run_dir, flags), flags.get("seed", "")
        with open(results_path, encoding="utf-8") as handle:
            results = json.load(handle)
    except FileNotFoundError as err:
        missing_file = os.path.basename(err.filename or "")
        run.failure = f"no {missing_file}" + (" (unfinished or failed)" if missing_file == RESULTS else "")
        return run
    except (OSError, UnicodeDecodeError, ValueError) as err:
        run.failure = f"unreadable: {' '.join(str(err).split())}"
        return run
    run.metric = lookup(results, metric)
    run.accuracy, run.loss = lookup(results, "accuracy"), lookup(results, "loss")
    run.macro_f1 = lookup(results, "macro.f1")
    if run.metric is None:
        run.failure = f"{RESULTS} has no number at {metric!r}"
    return run


def find_run_dirs(runs_dir: str) -> List[str]:
    """Directories under runs_dir holding run.flags or eval_results.json, sorted."""
    found = []
    for root, dirs, files in os.walk(runs_dir):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        if FLAGFILE in files or RESULTS in files:
            found.append(root)
    return sorted(found)


# ----------------------------------------------------------------------------- summarising


@dataclass
class Summary:
    """The repetitions of one configuration."""

    key: ConfigKey
    runs: List[Run] = field(default_factory=list)
    std_kind: str = "sample"

    @property
    def n(self) -> int:
        """Number of successful repetitions."""
        return len(self.runs)

    @property
    def mean(self) -> float:
        """Mean of the metric."""
        return statistics.fmean(run.metric for run in self.runs)  # type: ignore[misc]

    @property
    def std(self) -> float:
        """Standard deviation of the metric: sample (n - 1; NaN for a single repetition) or population (n, as
        the published get_stat.py's np.std)."""
        values = [run.metric for run in self.runs]
        if self.std_kind == "population":
            return statistics.pstdev(values)  # type: ignore[arg-type]
        return statistics.stdev(values) if self.n > 1 else math.nan  # type: ignore[arg-type]

    def mean_of(self, name: str) -> float:
        """Mean of 'accuracy', 'macro_f1' or 'loss' over the runs that report it; NaN when none does."""
        values = [getattr(run, name) for run in self.runs if getattr(run, name) is not None]
        return statistics.fmean(values) if values else math.nan

    @property
    def seeds(self) -> str:
        """The seeds of the repetitions, space-separated."""
        return " ".join(sorted((run.seed for run in self.runs), key=number_key))


def number_key(text: str) -> Tuple[float, str]:
    """Sort strings holding numbers by value (non-numbers last)."""
    try:
        return (float(text), text)
    except ValueError:
        return (math.inf, text)


def config_sort_key(key: ConfigKey) -> tuple:
    """Order configurations by model, then numerically by the grid values."""
    return (key[0], *(number_key(value) for value in key[1:]))


STD_KINDS = {"sample": "sample standard deviation (n - 1)",
             "population": "population standard deviation (n), as the published get_stat.py (np.std)"}


def summarise(runs: Sequence[Run], minimize: bool = False, std_kind: str = "sample") -> List[Summary]:
    """Group successful runs by configuration, best mean first (ties in configuration order)."""
    groups: Dict[ConfigKey, Summary] = {}
    for run in runs:
        if not run.failure:
            groups.setdefault(run.key, Summary(run.key, std_kind=std_kind)).runs.append(run)  # type: ignore[arg-type]
    ordered = sorted(groups.values(), key=lambda s: config_sort_key(s.key))
    return sorted(ordered, key=lambda s: s.mean if minimize else -s.mean)


# ----------------------------------------------------------------------------- writing


def fmt(value: float, digits: int = 6) -> str:
    """A number with fixed decimals, empty for NaN."""
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def csv_text(summaries: Sequence[Summary], metric: str) -> str:
    """The CSV report, one configuration a row, best first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "model", *CONFIG_FLAGS, "n", "seeds", f"{metric}_mean", f"{metric}_std",
                     "accuracy_mean", "macro_f1_mean", "loss_mean"])
    for rank, s in enumerate(summaries, start=1):
        writer.writerow([rank, *s.key, s.n, s.seeds, fmt(s.mean), fmt(s.std),
                         fmt(s.mean_of("accuracy")), fmt(s.mean_of("macro_f1")), fmt(s.mean_of("loss"))])
    return buffer.getvalue()


def markdown_text(summaries: Sequence[Summary], failed: Sequence[Run], metric: str) -> str:
    """The Markdown report: a table of configurations, best first, then the failed runs."""
    lines = [f"| rank | model | max_seq_length | batch | learning rate | epochs | {metric} (mean ± std) "
             "| accuracy | macro F1 | loss | n |", "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for rank, s in enumerate(summaries, start=1):
        spread = "" if math.isnan(s.std) else f" ± {s.std:.4f}"
        lines.append(f"| {rank} | {' | '.join(s.key)} | {s.mean:.4f}{spread} | "
                     f"{fmt(s.mean_of('accuracy'), 4)} | {fmt(s.mean_of('macro_f1'), 4)} | "
                     f"{fmt(s.mean_of('loss'), 4)} | {s.n} |")
    if summaries:
        lines += ["", f"± is the {STD_KINDS[summaries[0].std_kind]} over the repetitions."]
    else:
        lines.append("\nNo finished runs.")
    if failed:
        lines += ["", f"Failed runs ({len(failed)}):", ""]
        lines += [f"- `{run.path}`: {run.failure}" for run in failed]
    return "\n".join(lines) + "\n"


def panel_grid(summaries: Sequence[Summary]) -> Dict[Tuple[str, str, str], Dict[Tuple[str, str], float]]:
    """Mean metric by (model, max_seq_length, batch) panel and (learning rate, epochs) cell."""
    panels: Dict[Tuple[str, str, str], Dict[Tuple[str, str], float]] = {}
    for s in summaries:
        model, length, batch, lr, epochs = s.key
        panels.setdefault((model, length, batch), {})[(lr, epochs)] = s.mean
    return dict(sorted(panels.items(), key=lambda item: config_sort_key(item[0] + ("", ""))))


def draw_panel(axis: Any, cells: Dict[Tuple[str, str], float], limits: Tuple[float, float], minimize: bool) -> Any:
    """Draw one learning rate x epochs heatmap with values in the cells and the best outlined."""
    from matplotlib.patches import Rectangle
    import numpy as np

    rates = sorted({lr for lr, _ in cells}, key=number_key, reverse=True)
    epochs = sorted({ep for _, ep in cells}, key=number_key)
    grid = np.full((len(rates), len(epochs)), np.nan)
    for (lr, ep), value in cells.items():
        grid[rates.index(lr), epochs.index(ep)] = value
    image = axis.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=limits[0], vmax=limits[1], aspect="auto")
    for (row, col), value in np.ndenumerate(grid):
        if not math.isnan(value):
            light = (value - limits[0]) / (limits[1] - limits[0]) > 0.6  # viridis is light at the top
            axis.text(col, row, f"{value:.4f}", ha="center", va="center", color="black" if light else "white",
                      fontsize=9)
    best = np.unravel_index(np.nanargmin(grid) if minimize else np.nanargmax(grid), grid.shape)
    axis.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=3))
    axis.set_xticks(range(len(epochs)), epochs)
    axis.set_yticks(range(len(rates)), rates)
    axis.set_xlabel("epochs")
    return image


def write_heatmap(path: str, summaries: Sequence[Summary], metric: str, minimize: bool) -> None:
    """Write the heatmap PNG (one panel per model, max_seq_length and batch size) atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panel_grid(summaries)
    means = [s.mean for s in summaries]
    limits = (min(means), max(means) if max(means) > min(means) else min(means) + 1e-9)
    figure, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels) + 1.5, 4), squeeze=False,
                                layout="constrained")
    axes[0][0].set_ylabel("learning rate")
    for axis, ((model, length, batch), cells) in zip(axes[0], panels.items()):
        image = draw_panel(axis, cells, limits, minimize)
        axis.set_title(f"{model} (len {length}), batch {batch}")
    figure.colorbar(image, ax=list(axes[0]), label=f"mean {metric}")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


# ----------------------------------------------------------------------------- command line


def report(runs_dir: str, metric: str = "accuracy", out: Optional[str] = None, minimize: bool = False,
           std_kind: str = "sample") -> str:
    """Read the runs, write PREFIX.csv, PREFIX.md and PREFIX_heatmap.png; return the Markdown."""
    if not os.path.isdir(runs_dir):
        raise InputError("no such directory", runs_dir)
    run_dirs = find_run_dirs(runs_dir)
    if not run_dirs:
        raise InputError(f"no runs found (no {FLAGFILE} or {RESULTS} below it)", runs_dir)
    runs = [read_run(run_dir, metric) for run_dir in run_dirs]
    summaries = summarise(runs, minimize, std_kind)
    prefix = out or os.path.join(runs_dir, "grid_report")
    markdown = markdown_text(summaries, [run for run in runs if run.failure], metric)
    write_text_atomic(prefix + ".csv", csv_text(summaries, metric))
    write_text_atomic(prefix + ".md", markdown)
    if summaries:
        write_heatmap(prefix + "_heatmap.png", summaries, metric, minimize)
    html_report.write_grid_report(os.path.join(os.path.dirname(prefix + ".csv") or ".", html_report.REPORT_NAME),
                                  prefix + ".csv", prefix + "_heatmap.png" if summaries else None,
                                  [(run.path, run.failure) for run in runs if run.failure], metric)
    return markdown


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: print the Markdown report; bad input prints 'error: ...' and returns 2."""
    parser = argparse.ArgumentParser(description="Summarise a fine-tuning grid (see the module docstring).")
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="output directory of run_finetuning_grid.sh")
    parser.add_argument("--metric", default="accuracy", help="dotted path into eval_results.json (default accuracy "
                        "= micro F1, as the published grid ranked; macro.f1 to rank by macro F1)")
    parser.add_argument("--minimize", action="store_true", help="lower metric is better (e.g. --metric loss)")
    parser.add_argument("--out", metavar="PREFIX", help="output prefix (default RUNS_DIR/grid_report)")
    parser.add_argument("--std", choices=sorted(STD_KINDS), default="sample", help="standard deviation over the "
                        "repetitions: sample (n - 1, default) or population (n: the published get_stat.py's np.std)")
    args = parser.parse_args(argv)
    try:
        print(report(args.runs_dir, args.metric, args.out, args.minimize, args.std), end="")
    except InputError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
