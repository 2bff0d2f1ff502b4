"""report.html: one self-contained page per run (or grid) built from the files in its output folder.

No network: the PNG plots are embedded as base64 data URIs, the CSS is inline, and there are no scripts,
fonts or external links. The layout reflows from a phone to a wide screen and has print rules. Sections:
flags (run_config.json), data and devices (run_summary.json), curves (history.csv and its plots, the best
validation point marked), per-class results (test_results.json / eval_results.json), the confusion matrix,
timings and throughput, and the machine and versions.
"""

from __future__ import annotations

import base64
import csv
import html
import importlib.metadata
import json
import os
import platform
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from bert_tf import lifecycle
from bert_tf.io_utils import write_json_atomic, write_text_atomic

REPORT_NAME = "report.html"
SUMMARY_NAME = "run_summary.json"
RESULT_FILES = ("test_results.json", "eval_results.json")
PACKAGES = ("tensorflow", "keras", "keras-hub", "numpy")
EXAMPLES_PER_EPOCH = "training examples per epoch"  # a run_summary row the timings section divides by

CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--accent:#0969da;--best:#fff3b0}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0 auto;
 padding:1rem;max-width:1200px}
h1{font-size:1.5rem;margin:.2rem 0 .5rem}h2{font-size:1.15rem;border-bottom:1px solid var(--line);
 padding-bottom:.2rem;margin-top:1.6rem}
.muted{color:var(--muted)}.best{background:var(--best)}
.callout{border-left:4px solid var(--accent);padding:.4rem .8rem;background:#f6f8fa}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:.4rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid var(--line);padding:.2rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right}th{background:#f6f8fa}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}
figure{margin:0}img{max-width:100%;height:auto;border:1px solid var(--line)}
figcaption{font-size:.85rem;color:var(--muted)}
nav a{margin-right:.8rem;color:var(--accent);text-decoration:none}
@media (max-width:600px){body{font-size:14px;padding:.5rem}th,td{padding:.15rem .3rem}}
@media print{nav{display:none}body{max-width:none;font-size:11px}section{break-inside:avoid-page}
 .grid{display:block}figure{break-inside:avoid;margin-bottom:.5rem}img{max-width:80%}
 .scroll{overflow:visible}}
"""


# ----------------------------------------------------------------------------- what a run records


def machine_info() -> Dict[str, str]:
    """This machine: platform, CPU, Python and the versions of the numerical packages."""
    info = {"platform": platform.platform(), "cpu": cpu_model_name() or platform.processor() or platform.machine(), "cpu cores": str(os.cpu_count()),
            "python": platform.python_version()}
    for package in PACKAGES:
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def cpu_model_name() -> Optional[str]:
    """The CPU model name from /proc/cpuinfo (Linux), or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def counts(items: Iterable[str]) -> str:
    """'a 3, b 1': how often each item occurs, most frequent first."""
    tally: Dict[str, int] = {}
    for item in items:
        tally[item] = tally.get(item, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))


def write_run_summary(directory: str, title: str, rows: Dict[str, Any]) -> None:
    """Save what a run printed at its start (data, devices, steps) and this machine, for report.html."""
    write_json_atomic(os.path.join(directory, SUMMARY_NAME),
                      {"title": title, "rows": {k: str(v) for k, v in rows.items()}, "machine": machine_info(),
                       "written": time.strftime("%Y-%m-%d %H:%M:%S")})


# ----------------------------------------------------------------------------- reading the folder


def _read_json(path: str) -> Optional[Any]:
    """A JSON file's content, or None when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_history(path: str) -> List[Dict[str, str]]:
    """The rows of history.csv ([] when absent)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _number(text: Any) -> Optional[float]:
    """A cell as a float (None when empty or not a number)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def best_validation(history: Sequence[Dict[str, str]]) -> Tuple[Optional[int], str]:
    """Index of the best validation row (highest f1, else lowest loss) and the metric used."""
    metric = "f1" if any(_number(r.get("f1")) is not None for r in history if r.get("split") == "val") else "loss"
    candidates = [(i, _number(r.get(metric))) for i, r in enumerate(history) if r.get("split") == "val"]
    candidates = [(i, v) for i, v in candidates if v is not None]
    if not candidates:
        return None, metric
    pick = max(candidates, key=lambda c: c[1]) if metric == "f1" else min(candidates, key=lambda c: c[1])
    return pick[0], metric


# ----------------------------------------------------------------------------- HTML pieces


def esc(value: Any) -> str:
    """Text escaped for HTML."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A number with 4 decimals (whole numbers as they are), anything else as text."""
    if isinstance(value, str) and _is_number(value) and len(value) > 8 and "e" not in value.lower():
        value = float(value)  # long decimals from a CSV
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], highlight: Optional[int] = None) -> str:
    """An HTML table (numbers right-aligned; row `highlight` marked as the best)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="n">{esc(fmt(c))}</td>' if _is_number(c) else f"<td>{esc(c)}</td>" for c in row)
        body.append(f'<tr{" class=best" if i == highlight else ""}>{cells}</tr>')
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _is_number(value: Any) -> bool:
    """A number or numeric text (booleans excluded), shown right-aligned."""
    if isinstance(value, bool) or value is None:
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and _number(value) is not None)


def key_value_table(values: Dict[str, Any]) -> str:
    """A two-column table of settings."""
    return table(("name", "value"), ((k, json.dumps(v) if isinstance(v, (list, dict)) else v)
                                     for k, v in values.items()))


def image(path: str, caption: str) -> str:
    """A PNG file embedded as a data URI, with a caption."""
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def section(section_id: str, title: str, body: str) -> str:
    """A titled section."""
    return f'<section id="{section_id}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, sections: Sequence[Tuple[str, str, str]], intro: str = "") -> str:
    """The whole HTML document: title, navigation, intro, sections (id, title, body)."""
    nav = "".join(f'<a href="#{sid}">{esc(stitle)}</a>' for sid, stitle, _ in sections)
    body = "".join(section(*s) for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><nav>{nav}</nav>{intro}{body}</body></html>\n")


# ----------------------------------------------------------------------------- run report sections


def _none(what: str) -> str:
    return f'<p class="muted">{esc(what)}</p>'


def flags_section(output_dir: str) -> str:
    """The run's flags and recorded settings (run_config.json)."""
    config = _read_json(os.path.join(output_dir, "run_config.json"))
    if not isinstance(config, dict):
        return _none("run_config.json not found")
    extra = {k: v for k, v in config.items() if k != "flags"}
    items = list(config.get("flags", {}).items())
    size = max(1, -(-len(items) // 3))
    columns = "".join(key_value_table(dict(items[i:i + size])) for i in range(0, len(items), size))
    return f'<div class="grid">{columns}</div>' + (key_value_table(extra) if extra else "")


def data_section(summary: Optional[Dict]) -> str:
    """Data sizes, labels, cut or windowed words, devices and steps as the run reported them."""
    if not summary or not summary.get("rows"):
        return _none("run_summary.json not found: the run recorded no data summary")
    return key_value_table(summary["rows"])


def curves_section(output_dir: str, history: List[Dict[str, str]]) -> str:
    """Learning-curve plots and the history table, the best validation row marked."""
    pngs = sorted((n for n in os.listdir(output_dir) if n.endswith(".png") and not n.startswith("confusion")),
                  key=lambda n: (n != "loss.png", n))
    figures = "".join(image(os.path.join(output_dir, n), n[:-4]) for n in pngs)
    best, metric = best_validation(history)
    parts = [f'<div class="grid">{figures}</div>' if figures else _none("no plots found")]
    if best is not None:
        row = history[best]
        parts.insert(0, f'<p class="callout">Best validation point: {esc(metric)} = '
                        f'{esc(fmt(_number(row[metric])))} at epoch {esc(row.get("epoch"))} (step '
                        f'{esc(row.get("step"))}), highlighted below.</p>')
    if history:
        columns = list(history[0].keys())
        parts.append(table(columns, ([r.get(c, "") for c in columns] for r in history), best))
    return "".join(parts)


def _headline(results: Dict) -> Dict[str, Any]:
    """The overall figures of a results JSON (numbers at the top level and in its averages)."""
    out = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for group in ("micro", "macro", "weighted", "without_o"):
        if isinstance(results.get(group), dict):
            out.update({f"{group} {k}": v for k, v in results[group].items() if isinstance(v, (int, float))})
    return out


def results_section(output_dir: str) -> str:
    """Overall and per-class figures of every results JSON in the folder."""
    parts = []
    for name in RESULT_FILES:
        results = _read_json(os.path.join(output_dir, name))
        if not isinstance(results, dict):
            continue
        parts.append(f"<h3>{esc(name)}</h3>" + key_value_table(_headline(results)))
        per_class = results.get("per_class") or {}
        if per_class:
            columns = ["class"] + list(next(iter(per_class.values())).keys())
            parts.append(table(columns, ([c] + list(v.values()) for c, v in per_class.items())))
    return "".join(parts) or _none("no results file (test_results.json or eval_results.json) found")


def confusion_section(output_dir: str) -> str:
    """Confusion-matrix plots, else the matrix of a results JSON as a table."""
    pngs = sorted(n for n in os.listdir(output_dir) if n.startswith("confusion") and n.endswith(".png"))
    if pngs:
        return '<div class="grid">' + "".join(image(os.path.join(output_dir, n), n[:-4]) for n in pngs) + "</div>"
    for name in RESULT_FILES:
        results = _read_json(os.path.join(output_dir, name)) or {}
        if isinstance(results, dict) and results.get("confusion_matrix") and results.get("labels"):
            labels = results["labels"]
            return table(["gold \\ predicted"] + labels,
                         ([label] + row for label, row in zip(labels, results["confusion_matrix"])))
    return _none("no confusion matrix in this run (the NER scripts report per-type figures instead)")


def timings_section(history: List[Dict[str, str]], summary: Optional[Dict]) -> str:
    """Seconds and examples per second of every epoch, and their totals."""
    rows = [r for r in history if r.get("split") == "train" and _number(r.get("seconds")) is not None]
    if not rows:
        return _none("no timings recorded (history.csv has no training rows)")
    total = sum(_number(r["seconds"]) for r in rows)
    per_epoch = _number((summary or {}).get("rows", {}).get(EXAMPLES_PER_EPOCH))
    parts = [table(("epoch", "seconds", "training examples per second"),
                   ((r.get("epoch"), _number(r["seconds"]),
                     round(per_epoch / _number(r["seconds"]), 1) if per_epoch and _number(r["seconds"]) else "")
                    for r in rows)),
             f"<p>Training time: {total:.1f} s over {len(rows)} epoch(s).</p>"]
    steps = (summary or {}).get("rows", {}).get("steps")
    if steps:
        parts.append(f"<p>Steps: {esc(steps)}</p>")
    return "".join(parts)


def machine_section(summary: Optional[Dict]) -> str:
    """The machine and versions the run recorded (else this machine's, said so)."""
    if summary and summary.get("machine"):
        return key_value_table(summary["machine"]) + _none(f"recorded by the run at {summary.get('written', '?')}")
    return key_value_table(machine_info()) + _none("the run recorded no machine: this is where the report was made")


def build_run_report(output_dir: str) -> str:
    """The report page of one run's output folder."""
    summary = _read_json(os.path.join(output_dir, SUMMARY_NAME))
    summary = summary if isinstance(summary, dict) else None
    history = read_history(os.path.join(output_dir, "history.csv"))
    title = f"{(summary or {}).get('title', 'bert-tf run')}: {os.path.basename(os.path.abspath(output_dir))}"
    sections = [
        ("curves", "Curves", curves_section(output_dir, history)),
        ("results", "Results per class", results_section(output_dir)),
        ("confusion", "Confusion matrix", confusion_section(output_dir)),
        ("data", "Data and devices", data_section(summary)),
        ("timings", "Timings and throughput", timings_section(history, summary)),
        ("flags", "Flags", flags_section(output_dir)),
        ("machine", "Machine and versions", machine_section(summary)),
    ]
    intro = f'<p class="muted">{esc(os.path.abspath(output_dir))}</p>' + overview(output_dir)
    return page(title, sections, intro)


def overview(output_dir: str) -> str:
    """One line of headline figures from the results files."""
    figures = []
    for name in RESULT_FILES:
        results = _read_json(os.path.join(output_dir, name))
        if isinstance(results, dict):
            headline = _headline(results)
            shown = [f"{k} {fmt(float(headline[k]))}" for k in ("f1", "macro f1", "accuracy", "loss") if k in headline]
            figures.append(f"{name[:-5].replace('_', ' ')}: " + ", ".join(shown))
    return f'<p class="callout">{esc("; ".join(figures))}</p>' if figures else ""


def write_run_report(output_dir: str) -> str:
    """Write output_dir/report.html from the files in the folder; returns its path."""
    path = os.path.join(output_dir, REPORT_NAME)
    lifecycle.enter_phase("report")
    write_text_atomic(path, build_run_report(output_dir))
    return path


def write_grid_report(path: str, csv_path: str, heatmap_path: Optional[str], failed: Sequence[Tuple[str, str]],
                      metric: str) -> str:
    """Write a grid's report page: the summary table (best first, marked), the heatmap, failed runs."""
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    sections = [("results", f"Configurations by {metric} (best first)",
                 table(header, body, 0 if body else None) if body else _none("no successful runs"))]
    if heatmap_path and os.path.isfile(heatmap_path):
        sections.append(("curves", "Heatmap", image(heatmap_path, os.path.basename(heatmap_path)[:-4])))
    sections.append(("failed", "Failed runs", table(("run", "why"), failed) if failed else _none("none")))
    sections.append(("machine", "Machine and versions", machine_section(None)))
    write_text_atomic(path, page(f"bert-tf grid: {os.path.basename(os.path.dirname(os.path.abspath(path)))}",
                                 sections))
    return path
