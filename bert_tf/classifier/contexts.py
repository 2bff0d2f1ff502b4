"""Prediction inputs from the dictionary tagger's output: the published generate_prediction_inputs/ chain
(create_documents.pl, create_matches.pl, split_string.py -n N, sort -n, the organism filters, get_contexts.py
-t TYPE -w WORDS) as one command, writing the same files byte for byte. Users' page: docs/prediction_inputs.md.

    python -m bert_tf.classifier.contexts --matches all_matches.tsv --entities all_entities.tsv \\
        --excluded excluded_documents.txt --documents pmc/*.tsv.gz pubmed/*.tsv.gz \\
        --ranks scientific_names_and_ranks.tsv --output_dir split-contexts [--shards 300 --words 100]

writes OUTPUT_DIR/TYPE-contexts-wWORDS-NNN.tsv for every type (che, org, ggp, dis) and shard (documents whose
number % N is NNN). Two steps: `split` reads the inputs once and writes every shard's documents and matches under
OUTPUT_DIR/.split/ (renamed into place when complete), `shards` sorts each shard and writes its contexts (a shard
is done when all its files exist; each is renamed into place when complete); `all` (the default) runs both, skips
done shards, and removes .split/ when every shard is done. OUTPUT_DIR/contexts_info.json records the inputs and
settings; a rerun with others stops, naming the difference, unless --overwrite.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import sys
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from bert_tf.cli import error_exit_status, notice
from bert_tf.classifier import context_windows, tagger_output
from bert_tf.classifier.context_windows import Match
from bert_tf.classifier.corpus import resolve_group
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory, atomic_path, load_json, remove_atomic_leftovers, write_json_atomic
from bert_tf.progress import ProgressBar

TYPES = ("che", "org", "ggp", "dis")
STEPS = ("all", "split", "shards")
RECORD = "contexts_info.json"
SPLIT_DIR = ".split"
SETTING_KEYS = ("shards", "words", "types", "inputs")
PROGRESS_LINES = 200_000


# ----------------------------------------------------------------------------- settings and the run record


def file_identity(path: str) -> Dict[str, Any]:
    """A file as the run record names it: absolute path, size, modification time."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror}", path) from None
    return {"path": os.path.abspath(path), "size": status.st_size, "mtime": int(status.st_mtime)}


def run_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """What decides the outputs: shard count, words, types and the inputs' identities."""
    missing = [name for name in ("matches", "entities", "excluded", "documents") if not getattr(args, name)]
    if "org" in args.types and not args.ranks:
        missing.append("ranks (for org)")
    if missing:
        raise InputError(f"missing input(s): --{', --'.join(missing)}")
    inputs = {"matches": file_identity(args.matches), "entities": file_identity(args.entities),
              "excluded": file_identity(args.excluded),
              "documents": [file_identity(path) for path in args.documents],
              "ranks": file_identity(args.ranks) if "org" in args.types else None}
    return {"shards": args.shards, "words": args.words, "types": list(args.types), "inputs": inputs}


def settings_difference(recorded: Dict[str, Any], current: Dict[str, Any]) -> Optional[str]:
    """The first setting two records differ in, in words; None when they agree."""
    for key in SETTING_KEYS:
        if recorded.get(key) != current.get(key):
            return key if key == "inputs" else f"{key} {recorded.get(key)} (recorded) vs {current.get(key)}"
    return None


def output_name(entity_type: str, words: int, shard: int, shards: int) -> str:
    """A shard's context file name: TYPE-contexts-wWORDS-NNN.tsv, NNN as wide as split_string.py makes it."""
    return f"{entity_type}-contexts-w{words}-{str(shard).zfill(len(str(shards - 1)))}.tsv"


def shard_outputs(output_dir: str, settings: Dict[str, Any], shard: int) -> Dict[str, str]:
    """type -> the path of a shard's context file."""
    return {t: os.path.join(output_dir, output_name(t, settings["words"], shard, settings["shards"]))
            for t in settings["types"]}


def shard_done(output_dir: str, settings: Dict[str, Any], shard: int) -> bool:
    """Whether every context file of a shard exists (each is renamed into place only when complete)."""
    return all(os.path.isfile(path) for path in shard_outputs(output_dir, settings, shard).values())


def remove_outputs(output_dir: str, settings: Dict[str, Any]) -> None:
    """Remove what a run with `settings` wrote to `output_dir` (--overwrite)."""
    for shard in range(settings["shards"]):
        for path in shard_outputs(output_dir, settings, shard).values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    shutil.rmtree(os.path.join(output_dir, SPLIT_DIR), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(output_dir, RECORD))


def read_record(output_dir: str) -> Optional[Dict[str, Any]]:
    """The run record of `output_dir`; None when there is none."""
    path = os.path.join(output_dir, RECORD)
    return load_json(path) if os.path.isfile(path) else None


def claim(output_dir: str, settings: Dict[str, Any], overwrite: bool) -> None:
    """Check that `output_dir` holds nothing or this run's files (removing another run's with `overwrite`)."""
    path = os.path.join(output_dir, RECORD)
    recorded = read_record(output_dir)
    if recorded is None:
        return
    difference = settings_difference(recorded, settings)
    if difference is None:
        return
    if not overwrite:
        raise InputError(f"holds the contexts of other settings ({difference} differ); pass --overwrite to make "
                         "them again, or choose another --output_dir", path)
    remove_outputs(output_dir, recorded)


# ----------------------------------------------------------------------------- step 1: split


def shard_path(split_dir: str, kind: str, shard: int) -> str:
    """The temporary file of one shard's documents or matches."""
    return os.path.join(split_dir, f"{kind}-{shard}.tsv")


@contextlib.contextmanager
def shard_writers(split_dir: str, kind: str, shards: int) -> Iterator[List[IO[str]]]:
    """One open text file a shard for `kind` (documents or matches)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(open(shard_path(split_dir, kind, i), "w", encoding="utf-8", newline="\n"))
               for i in range(shards)]


def split_documents(args: argparse.Namespace, split_dir: str, progress: ProgressBar) -> int:
    """Write every shard's candidate documents (`document<TAB>line`, the line empty for one create_documents.pl
    drops) in input order; the number of lines read."""
    excluded = tagger_output.read_excluded(args.excluded)
    count = 0
    with shard_writers(split_dir, "documents", args.shards) as out:
        for count, document in enumerate(tagger_output.iter_documents(args.documents, excluded), start=1):
            out[int(document.document) % args.shards].write(f"{document.document}\t{document.line or ''}\n")
            if count % PROGRESS_LINES == 0:
                progress.update(count)
    return count


def split_matches(args: argparse.Namespace, split_dir: str, progress: ProgressBar) -> int:
    """Write every shard's matches (`tagger line number<TAB>line`) in input order; the number kept."""
    entities = tagger_output.read_entities(args.entities)
    count = 0
    with shard_writers(split_dir, "matches", args.shards) as out:
        for count, (line, source_line) in enumerate(tagger_output.iter_matches(args.matches, entities), start=1):
            out[context_windows.leading_number(line) % args.shards].write(f"{source_line}\t{line}\n")
            if count % PROGRESS_LINES == 0:
                progress.update(count)
    return count


def split(args: argparse.Namespace, output_dir: str, settings: Dict[str, Any]) -> None:
    """Step 1: every shard's documents and matches under OUTPUT_DIR/.split/, then the run record."""
    for leftover in glob.glob(os.path.join(glob.escape(output_dir), f"{SPLIT_DIR}.*.tmp")):  # a killed split's
        shutil.rmtree(leftover, ignore_errors=True)
    with atomic_directory(os.path.join(output_dir, SPLIT_DIR)) as split_dir:
        documents = split_documents(args, split_dir, ProgressBar(None, "documents", unit="document"))
        matches = split_matches(args, split_dir, ProgressBar(None, "matches", unit="match"))
    write_json_atomic(os.path.join(output_dir, RECORD), settings)
    notice(f"{documents} PMID documents and {matches} matches of known entities split into {args.shards} shards",
           output_dir)


# ----------------------------------------------------------------------------- step 2: one shard


def read_shard_documents(split_dir: str, shard: int) -> List[str]:
    """A shard's database_documents lines, the first of each document only, sorted."""
    seen: Set[str] = set()
    lines: List[str] = []
    with open(shard_path(split_dir, "documents", shard), encoding="utf-8", newline="\n") as f:
        for record in f:
            document, line = record[:-1].split("\t", 1)
            if document not in seen:
                seen.add(document)
                if line:
                    lines.append(line)
    return context_windows.sort_lines(lines)


def read_shard_matches(split_dir: str, shard: int) -> List[Match]:
    """A shard's database_matches lines in input order."""
    with open(shard_path(split_dir, "matches", shard), encoding="utf-8", newline="\n") as f:
        return [Match(line, int(number)) for number, line in (record[:-1].split("\t", 1) for record in f)]


def shard_lines(split_dir: str, shard: int, settings: Dict[str, Any], species: Optional[Set[str]]
                ) -> Iterator[Tuple[str, str]]:
    """(type, context line) of one shard: che, ggp, dis from every match, org from the organism path."""
    documents = read_shard_documents(split_dir, shard)
    matches = read_shard_matches(split_dir, shard)
    matches_path = settings["inputs"]["matches"]["path"]
    words, types = settings["words"], settings["types"]
    others = [t for t in types if t != "org"]
    if others:
        yield from context_windows.context_lines(documents, context_windows.sort_matches(matches), others, words,
                                                 matches_path)
    if "org" in types:
        organisms = context_windows.organism_matches(matches, species or set())
        yield from context_windows.context_lines(context_windows.organism_documents(documents, organisms),
                                                 organisms, ["org"], words, matches_path)


def write_shard(output_dir: str, split_dir: str, shard: int, settings: Dict[str, Any],
                species: Optional[Set[str]]) -> None:
    """Write one shard's context files, all renamed into place only when every line is written."""
    outputs = shard_outputs(output_dir, settings, shard)
    remove_atomic_leftovers(outputs.values())
    with contextlib.ExitStack() as stack:
        files = {t: stack.enter_context(open(stack.enter_context(atomic_path(path)), "w", encoding="utf-8",
                                             newline="\n"))
                 for t, path in outputs.items()}
        for entity_type, line in shard_lines(split_dir, shard, settings, species):
            files[entity_type].write(line)


def run_shards(output_dir: str, group: int, num_groups: int) -> int:
    """Step 2: the context files of this group's shards (shard j in group j % num_groups), done ones skipped;
    the number written."""
    settings = read_record(output_dir)
    split_dir = os.path.join(output_dir, SPLIT_DIR)
    if settings is None:
        raise InputError(f"no {RECORD}: run the split step first", output_dir)
    pending = [s for s in range(settings["shards"])
               if s % num_groups == group and not shard_done(output_dir, settings, s)]
    if pending and not os.path.isdir(split_dir):
        raise InputError(f"no {SPLIT_DIR}/ folder (removed once every shard was done?): run the split step again",
                         output_dir)
    species = None
    if pending and "org" in settings["types"]:
        species = tagger_output.read_species(settings["inputs"]["ranks"]["path"])
    progress = ProgressBar(len(pending), "contexts", unit="shard")
    for count, shard in enumerate(pending, start=1):
        write_shard(output_dir, split_dir, shard, settings, species)
        progress.update(count)
    return len(pending)


# ----------------------------------------------------------------------------- the command


def all_done(output_dir: str, settings: Dict[str, Any]) -> bool:
    """Whether every shard's context files exist."""
    return all(shard_done(output_dir, settings, s) for s in range(settings["shards"]))


def run(args: argparse.Namespace) -> None:
    """The command: split (unless done or not needed), the shards of this group, cleanup when all are done."""
    output_dir = args.output_dir
    group = resolve_group(args.shard_index, args.num_shard_groups)
    if args.step in ("all", "split"):
        settings = run_settings(args)
        claim(output_dir, settings, args.overwrite)
        have_split = os.path.isdir(os.path.join(output_dir, SPLIT_DIR)) and os.path.isfile(
            os.path.join(output_dir, RECORD))
        if not have_split and (args.step == "split" or not all_done(output_dir, settings)):
            split(args, output_dir, settings)
    if args.step in ("all", "shards"):
        written = run_shards(output_dir, group, args.num_shard_groups)
        notice(f"{written} shard(s) written", output_dir)
    if args.step == "all" and all_done(output_dir, read_record(output_dir) or {"shards": 0}):
        shutil.rmtree(os.path.join(output_dir, SPLIT_DIR), ignore_errors=True)


def run_claiming(args: argparse.Namespace) -> None:
    """run(), removing the output folder again when this run created it and stopped on bad input."""
    created = args.step != "shards" and not os.path.exists(args.output_dir)
    try:
        run(args)
    except InputError:
        if created:
            shutil.rmtree(args.output_dir, ignore_errors=True)
        raise


def type_list(text: str) -> List[str]:
    """argparse type: comma-separated entity types among TYPES."""
    types = [t for t in text.split(",") if t]
    unknown = [t for t in types if t not in TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(TYPES)}, got {text!r}")
    return types


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bert_tf.classifier.contexts",
                                     description="Context TSVs for run_classifier.py --do_predict from the "
                                                 "dictionary tagger's output (docs/prediction_inputs.md).")
    parser.add_argument("--matches", help="the tagger's --out-matches file (all_matches.tsv)")
    parser.add_argument("--entities", help="the dictionary's entities file (all_entities.tsv)")
    parser.add_argument("--excluded", help="the excluded documents list (excluded_documents.txt)")
    parser.add_argument("--documents", nargs="+", default=[],
                        help="the document files the tagger read, in its order (.gz decompressed)")
    parser.add_argument("--ranks", help="taxonomy id, name, rank table (scientific_names_and_ranks.tsv; for org)")
    parser.add_argument("--output_dir", required=True, help="where the context files go")
    parser.add_argument("--shards", type=positive, default=300, help="shard count (split_string.py -n; default 300)")
    parser.add_argument("--words", type=int, default=100, help="context words a side (get_contexts.py -w; 100)")
    parser.add_argument("--types", type=type_list, default=list(TYPES), help="default che,org,ggp,dis")
    parser.add_argument("--step", choices=STEPS, default="all", help="all (default), split or shards")
    parser.add_argument("--shard_index", type=int, help="this process's group (default $SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--num_shard_groups", type=positive, default=1,
                        help="groups the shards are dealt to (shard j to group j %% N; default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace the contexts of other settings")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command; 0 on success, 2 on bad input (one line on stderr)."""
    args = build_parser().parse_args(argv)
    if args.words < 0:
        print("error: --words must be 0 or more", file=sys.stderr)
        return 2
    return error_exit_status(lambda: run_claiming(args))


if __name__ == "__main__":
    raise SystemExit(main())
