"""Blocklists of dictionary names from the classifier's predictions, exactly as the published scripts make them.

This is the command line; the specification (each step, exactness, bad input) is docs/blocklists.md.

    python -m bert_tf.classifier.blocklists pipeline --run_dir RUN_DIR [--output_dir OUT] [--types ggp,che,org,dis]
    python -m bert_tf.classifier.blocklists local -m 1 -t 1.01 -s ggp -T ggp PREDICTIONS... --output local.tsv
    python -m bert_tf.classifier.blocklists global -m 2 -t 0.5 LOCAL... --output global.tsv
    python -m bert_tf.classifier.blocklists nontype -m 2 LOCAL... --output nontype.tsv               # -t 0.0
    python -m bert_tf.classifier.blocklists local-ratio --ratio 1000 --nontype nontype.tsv LOCAL... --output blocked.tsv
    python -m bert_tf.classifier.blocklists allowlist --ratio 1e15 -g 0.3 --nontype nontype.tsv LOCAL... --output allowed.tsv

(the values generate-blocklists.sh passes; each step's defaults are its published script's: local -t 0.5 -m 2
-s ggp -T ggp, global and nontype -m 10, local-ratio and allowlist no --ratio and no -g.)

The rules are bert_tf.classifier.blocklist_rules, the files and the pipeline bert_tf.classifier.blocklist_files.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import fields
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bert_tf.cli import error_exit_status, notice
from bert_tf.classifier.blocklist_files import PUBLISHED, PipelineOptions, note_temperatures, run_pipeline, write_output
from bert_tf.classifier.blocklist_rules import (GLOBAL_THRESHOLD, NONTYPE_THRESHOLD, PUBLISHED_ALLOWLIST_TYPES,
                                                PUBLISHED_LOCAL_LIST_TYPES, SCRIPT_GLOBAL_MIN_DOCS,
                                                SCRIPT_LOCAL_MIN_COUNT, SCRIPT_LOCAL_THRESHOLD, SCRIPT_LOCAL_TYPE,
                                                LocalOptions, RatioOptions, global_lines, local_lines, ratio_lines,
                                                read_name_types, read_never_block, read_nontype_table)
def type_list(text: str) -> List[str]:
    """argparse type: a comma-separated list of types."""
    return [t for t in (part.strip() for part in text.split(",")) if t]


def type_thresholds(text: str) -> Dict[str, float]:
    """argparse type: 'type:threshold,type:threshold'."""
    result = {}
    for part in type_list(text):
        name, sep, value = part.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected type:threshold, got {part!r}")
        result[name] = float(value)
    return result


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """--output, --overwrite and --compensated_sum."""
    parser.add_argument("--output", "-o", required=True, help="the list to write (a new file)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--compensated_sum", action="store_true",
                        help="add floats as Python >= 3.12's sum() does (Neumaier), not left to right as 3.11")


def add_local_parser(commands: argparse._SubParsersAction) -> None:
    """The 'local' command (make_local_blacklist.py)."""
    p = commands.add_parser("local", help="per document: names and their combined target-type probability")
    p.add_argument("predictions", nargs="+", help="prediction files, ours or the published 8-column ones")
    p.add_argument("--source_type", "-s", default=SCRIPT_LOCAL_TYPE, help="count rows whose column 3 is this type")
    p.add_argument("--target_type", "-T", default=SCRIPT_LOCAL_TYPE, help="the type whose probability is listed")
    p.add_argument("--threshold", "-t", type=float, default=SCRIPT_LOCAL_THRESHOLD,
                   help="list names whose probability is below this (the pipeline's 1.01 lists all)")
    p.add_argument("--min_count", "-m", type=int, default=SCRIPT_LOCAL_MIN_COUNT,
                   help="list names seen at least this often in the document (the pipeline's: 1)")
    p.add_argument("--probability", "-p", action="store_true", help="print the probability, not its log10")
    p.add_argument("--all_rows", action="store_true", help="count every row, whatever its column 3 says")
    p.add_argument("--source_types_file", help="'name<TAB>type' lines: a name's types, used instead of column 3")
    p.add_argument("--lowercase_names", action="store_true", help="group and write names lowercased")
    add_output_flags(p)
    p.set_defaults(run=run_local)


def add_global_parsers(commands: argparse._SubParsersAction) -> None:
    """The 'global' and 'nontype' commands (global_blacklist_candidates.py | sort -rn)."""
    for name, threshold, text in (("global", GLOBAL_THRESHOLD, "names usually not of their type"),
                                  ("nontype", NONTYPE_THRESHOLD, "every name's mean probability of not being its type")):
        p = commands.add_parser(name, help=text)
        p.add_argument("local", nargs="+", help="local lists (from 'local')")
        p.add_argument("--min_docs", "-m", type=int, default=SCRIPT_GLOBAL_MIN_DOCS,
                       help="keep names in at least this many lines (the pipeline's: 2)")
        p.add_argument("--threshold", "-t", type=float, default=threshold, help="keep means at least this")
        p.add_argument("--never_block", help="'name<TAB>type' pairs never listed (default: insulin, INSULIN as ggp)")
        add_output_flags(p)
        p.set_defaults(run=run_global)


def add_ratio_parsers(commands: argparse._SubParsersAction) -> None:
    """The 'local-ratio' and 'allowlist' commands (make_local_bw_lists.py | sort -rn)."""
    for name, text in (("local-ratio", "names locally unlikely to be of a type likely globally"),
                       ("allowlist", "names locally of a type although globally blocked")):
        p = commands.add_parser(name, help=text)
        p.add_argument("local", nargs="+", help="local lists (from 'local')")
        p.add_argument("--nontype", required=True, help="the non-type table (from 'nontype')")
        p.add_argument("--ratio", "-r", type=float, help="the odds ratio to exceed (default: none; the pipeline's "
                       "1000 for local-ratio, 1e15 for allowlist)")
        if name == "allowlist":
            p.add_argument("--global_type_probability", "-g", type=float,
                           help="the global type probability to exceed (default: none; the pipeline's 0.3)")
        p.add_argument("--global_min_docs", "-m", type=int, default=RatioOptions.global_min_docs,
                       help="globally blocked: documents at least")
        p.add_argument("--global_threshold", "-t", type=float, default=RatioOptions.global_threshold,
                       help="globally blocked: non-type probability at least")
        p.add_argument("--function", "-f", choices=("ratio", "diff"), default=RatioOptions.function,
                       help="the first column")
        p.add_argument("--never_block", help="'name<TAB>type' pairs never globally blocked (default: insulin)")
        add_output_flags(p)
        p.set_defaults(run=run_ratio)


PIPELINE_FLAGS: Tuple[Tuple[str, Callable[[str], Any], str], ...] = (  # (PipelineOptions field, type, help)
    ("types", type_list, "types, comma-separated"),
    ("local_threshold", float, "local step threshold (1.01: every name)"),
    ("local_min_count", int, "local step minimum count per document"),
    ("min_docs", int, "global and non-type lists: documents at least"),
    ("global_threshold", float, "global list threshold"),
    ("global_threshold_per_type", type_thresholds, "per-type global thresholds, e.g. dis:0.85"),
    ("block_ratio", float, "local blocklist odds ratio"),
    ("allow_ratio", float, "local allowlist odds ratio"),
    ("allow_global_type_probability", float, "local allowlist: global type probability to exceed"),
    ("ratio_global_min_docs", int, "bw lists: globally blocked from this many docs"),
    ("ratio_global_threshold", float, "bw lists: globally blocked threshold"),
)


def add_pipeline_parser(commands: argparse._SubParsersAction) -> None:
    """The 'pipeline' command (generate-blocklists.sh)."""
    p = commands.add_parser("pipeline", help="every list of generate-blocklists.sh, auto_local.tsv and auto_global.tsv")
    p.add_argument("--run_dir", required=True, help="holds TYPE-predictions/output_with_probabilities_*")
    p.add_argument("--output_dir", help="where the lists go (default: --run_dir, as published)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist already")
    for name, kind, text in PIPELINE_FLAGS:
        p.add_argument("--" + name, type=kind, default=copy.copy(getattr(PUBLISHED, name)), help=text)
    p.add_argument("--local_list_types", type=type_list,
                   help="types with a non-type table and local blocklists (default: ggp,che among --types)")
    p.add_argument("--allowlist_types", type=type_list,
                   help="types with local allowlists (default: ggp if among --local_list_types)")
    p.add_argument("--never_block", help="'name<TAB>type' pairs never blocked (default: insulin, INSULIN as ggp)")
    p.add_argument("--compensated_sum", action="store_true", help="add floats as Python >= 3.12's sum() does")
    p.set_defaults(run=run_pipeline_command)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m bert_tf.classifier.blocklists", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_local_parser(commands)
    add_global_parsers(commands)
    add_ratio_parsers(commands)
    add_pipeline_parser(commands)
    return parser


def report(count: int, path: str) -> None:
    """Say how many lines were written where."""
    notice(f"{count} lines written", path)


def run_local(args: argparse.Namespace) -> None:
    """The 'local' command."""
    types = read_name_types(args.source_types_file, args.lowercase_names) if args.source_types_file else None
    options = LocalOptions(args.source_type, args.target_type, args.threshold, args.min_count,
                           args.probability, args.all_rows, types, args.lowercase_names, args.compensated_sum)
    note_temperatures(args.predictions)
    report(write_output(args.output, local_lines(args.predictions, options), args.overwrite), args.output)


def run_global(args: argparse.Namespace) -> None:
    """The 'global' and 'nontype' commands."""
    lines = global_lines(args.local, args.min_docs, args.threshold, read_never_block(args.never_block),
                         args.compensated_sum)
    report(write_output(args.output, lines, args.overwrite), args.output)


def run_ratio(args: argparse.Namespace) -> None:
    """The 'local-ratio' and 'allowlist' commands."""
    options = RatioOptions(args.command == "local-ratio", args.ratio, getattr(args, "global_type_probability", None),
                           args.global_min_docs, args.global_threshold, args.function,
                           read_never_block(args.never_block))
    lines = ratio_lines(read_nontype_table(args.nontype), args.local, options)
    report(write_output(args.output, lines, args.overwrite), args.output)


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """The PipelineOptions of the 'pipeline' command's flags (each flag named as its field)."""
    local_types = args.local_list_types
    if local_types is None:
        local_types = [t for t in PUBLISHED_LOCAL_LIST_TYPES if t in args.types]
    allow_types = args.allowlist_types
    if allow_types is None:
        allow_types = [t for t in PUBLISHED_ALLOWLIST_TYPES if t in local_types]
    named = {option.name for option in fields(PipelineOptions)} - {"local_list_types", "allowlist_types", "never_block"}
    return PipelineOptions(**{name: getattr(args, name) for name in named}, local_list_types=local_types,
                           allowlist_types=allow_types, never_block=read_never_block(args.never_block))


def run_pipeline_command(args: argparse.Namespace) -> None:
    """The 'pipeline' command."""
    options = pipeline_options(args)
    output_dir = run_pipeline(args.run_dir, args.output_dir, options, args.overwrite)
    notice("auto_local.tsv, auto_global.tsv and every intermediate list written", output_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; 0 on success, 2 on bad input (one line on stderr)."""
    args = build_parser().parse_args(argv)
    return error_exit_status(lambda: args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
