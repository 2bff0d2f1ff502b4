"""Write docs/flags.md from the flag definitions of run_ner.py, run_classifier.py and run_pretraining.py.

    python scripts/make_flags_doc.py           # rewrite docs/flags.md
    python scripts/make_flags_doc.py --check   # exit 1 when docs/flags.md differs from a fresh generation

The flags are defined the way each script defines them (`config.define_flags` on the job's config, into a fresh
FlagValues), so the page lists exactly what the scripts accept: name, type, default and help, grouped by what a
flag changes (its role).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import flags as absl_flags  # noqa: E402

from bert_tf import config  # noqa: E402
from bert_tf.classifier.config import ClassifierConfig  # noqa: E402
from bert_tf.ner.config import NerConfig  # noqa: E402
from bert_tf.pretraining.config import PretrainingConfig  # noqa: E402

OUTPUT = os.path.join(ROOT, "docs", "flags.md")
SCRIPTS: Tuple[Tuple[str, type], ...] = (("run_ner.py", NerConfig), ("run_classifier.py", ClassifierConfig),
                                         ("run_pretraining.py", PretrainingConfig))
GROUPS = (
    (config.RESULT, "What is trained", "Data, model and optimization: a resumed run must give the same values."),
    (config.OUTPUT, "What the run does and writes",
     "Evaluation, prediction, devices, checkpoint frequency: a resume may change them."),
    (config.OPERATIONAL, "How it runs", "Logging, progress, input threads, overwriting and resuming."),
    (config.PUBLISHED_NOOP, "Accepted from the published command lines",
     "These flags are accepted so that published commands run unchanged; they do nothing here."),
)


def flag_rows(config_type: type) -> Dict[config.Role, List[Tuple[str, str, str, str]]]:
    """(name, type, default, help) of each flag the script defines, by role."""
    flag_values = absl_flags.FlagValues()
    config.define_flags(config_type, flag_values, module_name="docs")
    roles = {f.name: config.role_of(f) for f in config.settings_fields(config_type)}
    rows: Dict[config.Role, List[Tuple[str, str, str, str]]] = {}
    for name in sorted(flag_values):
        flag = flag_values[name]
        kind = flag.flag_type()
        if getattr(flag.parser, "enum_values", None):
            kind = " \\| ".join(flag.parser.enum_values)
        shown = "" if flag.default is None else flag.default_as_str.strip("'")
        default = f"`{shown}`" if shown else ""
        help_text = " ".join(flag.help.split()).replace("%%", "%")
        if kind != flag.flag_type():  # absl puts an enum's choices before its help
            help_text = help_text.split(">: ", 1)[-1]
        help_text = help_text.replace("|", "\\|")
        rows.setdefault(roles[name], []).append((name, kind, default, help_text))
    return rows


def render() -> str:
    """The whole page."""
    lines = ["# Flags", "",
             "Every flag of the three scripts, generated from their definitions by `python scripts/make_flags_doc.py`"
             " (a test fails when this page and the code differ). Each script also reads `--flagfile=FILE`"
             " (one flag a line; see `flags/`), and `--helpfull` prints absl's own flags. Boolean flags are given as"
             " `--name`, `--noname`, `--name=true` or `--name=false`.", ""]
    lines += [f"- [`{script}`](#{script.replace('.', '')})" for script, _ in SCRIPTS]
    for script, config_type in SCRIPTS:
        lines += ["", f"## {script}", ""]
        rows = flag_rows(config_type)
        for role, title, meaning in GROUPS:
            if role not in rows:
                continue
            lines += [f"### {title}", "", meaning, "", "| flag | type | default | what it does |", "|---|---|---|---|"]
            lines += [f"| `--{name}` | {kind} | {default} | {text} |" for name, kind, default, text in rows[role]]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str]) -> int:
    """Write (or with --check, compare) docs/flags.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when they differ")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = open(OUTPUT, encoding="utf-8").read() if os.path.isfile(OUTPUT) else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python scripts/make_flags_doc.py", file=sys.stderr)
            return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
