"""The blocklists' files: writing lists, and the published pipeline over a run folder (generate-blocklists.sh):
its output names, staging directory and the move into place. The specification: docs/blocklists.md."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

from bert_tf import lifecycle, ownership
from bert_tf.classifier import corpus
from bert_tf.cli import notice
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path, iter_lines
from bert_tf.classifier.prediction_files import PUBLISHED_SUBDIR
from bert_tf.classifier.blocklist_rules import (ALLOW_RATIO, AUTO_GLOBAL_ORDER, BLOCK_RATIO, DEFAULT_NEVER_BLOCK,
                                                DEFAULT_TYPES, GLOBAL_MIN_DOCS, GLOBAL_THRESHOLD, GlobalProbability,
                                                Key, LocalOptions, NONTYPE_THRESHOLD, PREDICTIONS_GLOB,
                                                PUBLISHED_ALLOWLIST_TYPES, PUBLISHED_LOCAL_LIST_TYPES, RatioOptions,
                                                counted_ratio_lines, global_lines, local_file_lines, note_missing,
                                                read_nontype_table)


# ----------------------------------------------------------------------------- output


def write_lines(handle: TextIO, lines: Iterable[str]) -> int:
    """Write lines with newlines; return how many."""
    count = 0
    for line in lines:
        handle.write(line + "\n")
        count += 1
    return count


def write_output(path: str, lines: Iterable[str], overwrite: bool = False) -> int:
    """Write lines to a new file atomically (an existing one only with overwrite); return how many."""
    if os.path.exists(path) and not overwrite:
        raise InputError("exists already; use --overwrite to replace it", path)
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            return write_lines(handle, lines)
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror}", path) from None


def write_text_lines(path: str, lines: Iterable[str]) -> int:
    """Write lines to a file (inside the pipeline's staging directory); return how many."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        return write_lines(handle, lines)


def concatenate(paths: Sequence[str]) -> Iterator[str]:
    """The lines of files one after the other (``cat``)."""
    for path in paths:
        for _, line in iter_lines(path):
            yield line


def tab_columns(lines: Iterable[str], columns: Sequence[int], suffix: str) -> Iterator[str]:
    """awk -F'\\t' '{printf("%s\\t...%s\\n", $i...)}': the chosen 1-based columns, then a suffix column."""
    for line in lines:
        cells = line.split("\t")
        picked = [cells[i - 1] if i <= len(cells) else "" for i in columns]
        yield "\t".join(picked + [suffix])


# ----------------------------------------------------------------------------- pipeline


def number_text(value: float) -> str:
    """A number as it appears in the published file names (0.5, 1000, 1e15)."""
    if value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return ("%g" % value).replace("e+", "e")


@dataclass
class PipelineOptions:
    """Settings of generate-blocklists.sh; every default is the published value."""

    types: List[str] = field(default_factory=lambda: list(DEFAULT_TYPES))
    local_threshold: float = LocalOptions.threshold
    local_min_count: int = LocalOptions.min_count
    min_docs: int = GLOBAL_MIN_DOCS
    global_threshold: float = GLOBAL_THRESHOLD
    global_threshold_per_type: Dict[str, float] = field(default_factory=lambda: {"dis": 0.85})
    local_list_types: List[str] = field(default_factory=lambda: list(PUBLISHED_LOCAL_LIST_TYPES))
    allowlist_types: List[str] = field(default_factory=lambda: list(PUBLISHED_ALLOWLIST_TYPES))
    block_ratio: float = BLOCK_RATIO
    allow_ratio: float = ALLOW_RATIO
    allow_global_type_probability: float = 0.3
    ratio_global_min_docs: int = RatioOptions.global_min_docs
    ratio_global_threshold: float = RatioOptions.global_threshold
    never_block: FrozenSet[Key] = DEFAULT_NEVER_BLOCK
    compensated_sum: bool = False

    def threshold(self, type_: str) -> float:
        """The global threshold of a type."""
        return self.global_threshold_per_type.get(type_, self.global_threshold)


PUBLISHED = PipelineOptions()  # the published settings: every command's defaults


def output_names(options: PipelineOptions) -> Dict[str, str]:
    """The published names of the pipeline's outputs, by role ('local:ggp', 'global:ggp', ...)."""
    m, d = options.local_min_count, options.min_docs
    names = {"auto_local": "auto_local.tsv", "auto_global": "auto_global.tsv"}
    for t in options.types:
        names[f"local:{t}"] = f"local_blacklists-01-{t}"
        names[f"global:{t}"] = f"{t}_global_min_mentions_{m}_min_docs_{d}_threshold_{options.threshold(t)}.tsv"
        names[f"2col:{t}"] = f"global_blacklist_{t}_2col.tsv"
    for t in options.local_list_types:
        names[f"nontype:{t}"] = f"global-non-{t}-probabilities-min-mentions-{m}-min-docs-{d}.tsv"
        names[f"ratio_dir:{t}"] = f"local-blacklists-ratio-{number_text(options.block_ratio)}-{t}"
        names[f"ratio:{t}"] = names[f"ratio_dir:{t}"] + ".tsv"
        names[f"ratio3:{t}"] = f"local_blacklist_{t}_3col.tsv"
    allow = f"ratio-{number_text(options.allow_ratio)}-global-{{t}}-prob-{options.allow_global_type_probability}"
    for t in options.allowlist_types:
        names[f"allow_dir:{t}"] = "local-whitelists-" + allow.format(t=t)
        names[f"allow:{t}"] = f"local-whitelist-{t}-" + allow.format(t=t) + ".tsv"
        names[f"allow3:{t}"] = f"local_whitelist_{t}_3col.tsv"
    return names


def check_pipeline_options(options: PipelineOptions) -> None:
    """InputError when the type lists do not fit together."""
    if not options.types or len(set(options.types)) != len(options.types):
        raise InputError(f"--types must name each type once, got {options.types}")
    for flag, subset, superset in (("--local_list_types", options.local_list_types, options.types),
                                   ("--allowlist_types", options.allowlist_types, options.local_list_types)):
        if not set(subset) <= set(superset):
            raise InputError(f"{flag} {','.join(subset)} must be among {','.join(superset)}")


PREDICTION_INFO = "prediction_info.json"


def temperature_note(directory: str) -> str:
    """Which temperature the predictions in a folder carry, from run_classifier.py's prediction_info.json."""
    path = os.path.join(directory, PREDICTION_INFO)
    if not os.path.isfile(path):
        return f"no {PREDICTION_INFO}: the temperature of these predictions is unknown (published files carry none)"
    try:
        with open(path, encoding="utf-8") as f:
            temperature = json.load(f).get("temperature")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read: {err}", path) from None
    if temperature is None or float(temperature) == 1.0:
        return "predictions at temperature 1 (not calibrated)"
    return f"predictions calibrated at temperature {float(temperature):.4g} (--calibrate)"


def note_temperatures(paths: Sequence[str]) -> None:
    """Refuse a folder whose shards two settings made (their shard_info_*.json records disagree); say, once per
    folder, which temperature the prediction files carry."""
    for directory in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
        corpus.check_folder_consistent(directory)
        if os.path.basename(directory) == PUBLISHED_SUBDIR:  # seed-compatible files; the records are one up
            corpus.check_folder_consistent(os.path.dirname(directory))
        notice(temperature_note(directory), directory)


def prediction_files(run_dir: str, type_: str) -> List[str]:
    """``RUN_DIR/TYPE-predictions/output_with_probabilities_*`` in the order bash globs them (C locale)."""
    pattern = os.path.join(glob.escape(os.path.join(run_dir, f"{type_}-predictions")), PREDICTIONS_GLOB)
    paths = sorted(glob.glob(pattern), key=os.path.basename)
    if not paths:
        raise InputError(f"no prediction files {PREDICTIONS_GLOB} for type {type_}",
                         os.path.join(run_dir, f"{type_}-predictions"))
    return paths


def tsv_files(paths: Sequence[str], type_: str) -> List[str]:
    """The .tsv files among local lists (the published steps after the global list glob ``*.tsv``)."""
    chosen = [p for p in paths if p.endswith(".tsv")]
    if not chosen:
        raise InputError(f"no prediction file of type {type_} ends in .tsv; the published non-type and local "
                         "lists read only *.tsv files")
    if len(chosen) < len(paths):
        notice(f"{len(paths) - len(chosen)} {type_} files not ending in .tsv left out of the non-type and local "
               "lists, as the published script does")
    return chosen


class PipelineRun:
    """One run of the pipeline, writing into a staging directory."""

    def __init__(self, run_dir: str, stage: str, options: PipelineOptions) -> None:
        self.run_dir, self.stage, self.options = run_dir, stage, options
        self.names = output_names(options)

    def path(self, role: str, *more: str) -> str:
        """The staging path of an output."""
        return os.path.join(self.stage, self.names[role], *more)

    def run(self) -> None:
        """Write every output of generate-blocklists.sh."""
        for t in self.options.types:
            lifecycle.enter_phase(f"blocklists {t}")
            local_paths = self.local_lists(t)
            self.global_list(t, local_paths)
            if t in self.options.local_list_types:
                self.local_block_allow(t, tsv_files(local_paths, t))
        self.auto_lists()

    def local_lists(self, type_: str) -> List[str]:
        """Local lists of every name of the type, one per prediction file (same file names)."""
        options = LocalOptions(type_, type_, self.options.local_threshold, self.options.local_min_count,
                               compensated_sum=self.options.compensated_sum)
        os.makedirs(self.path(f"local:{type_}"), exist_ok=True)
        paths = []
        sources = prediction_files(self.run_dir, type_)
        note_temperatures(sources)
        for source in sources:
            paths.append(self.path(f"local:{type_}", os.path.basename(source)))
            write_text_lines(paths[-1], local_file_lines(source, options))
        return paths

    def global_list(self, type_: str, local_paths: List[str]) -> None:
        """The global list of the type and its two-column form."""
        lines = global_lines(local_paths, self.options.min_docs, self.options.threshold(type_),
                             self.options.never_block, self.options.compensated_sum)
        write_text_lines(self.path(f"global:{type_}"), lines)
        write_text_lines(self.path(f"2col:{type_}"), tab_columns(lines, [4], "t"))

    def local_block_allow(self, type_: str, local_paths: List[str]) -> None:
        """The non-type table, the local blocklists and (for allowlist types) the local allowlists."""
        o = self.options
        nontype = global_lines(local_paths, o.min_docs, NONTYPE_THRESHOLD, o.never_block, o.compensated_sum)
        write_text_lines(self.path(f"nontype:{type_}"), nontype)
        table = read_nontype_table(self.path(f"nontype:{type_}"))
        common = dict(global_min_docs=o.ratio_global_min_docs, global_threshold=o.ratio_global_threshold,
                      never_block=o.never_block)
        if type_ in o.allowlist_types:
            allow = RatioOptions(False, o.allow_ratio, o.allow_global_type_probability, **common)
            self.ratio_lists(type_, local_paths, table, allow, ("allow_dir", "allow", "allow3"), "f")
        block = RatioOptions(True, o.block_ratio, **common)
        self.ratio_lists(type_, local_paths, table, block, ("ratio_dir", "ratio", "ratio3"), "t")

    def ratio_lists(self, type_: str, local_paths: List[str], table: Dict[Key, GlobalProbability],
                    options: RatioOptions, roles: Tuple[str, str, str], flag: str) -> None:
        """Per-file bw lists, their concatenation and its three-column form (name, doc_id, flag)."""
        directory, joined, three = (f"{role}:{type_}" for role in roles)
        os.makedirs(self.path(directory), exist_ok=True)
        missing = 0
        for local in local_paths:
            lines, skipped = counted_ratio_lines(table, [local], options)
            write_text_lines(self.path(directory, os.path.basename(local)), lines)
            missing += skipped
        note_missing(missing)
        parts = [self.path(directory, name) for name in sorted(os.listdir(self.path(directory)))]
        write_text_lines(self.path(joined), concatenate(parts))
        write_text_lines(self.path(three), tab_columns(concatenate([self.path(joined)]), [2, 3], flag))

    def auto_lists(self) -> None:
        """auto_local.tsv (``sort``) and auto_global.tsv (``sort -u``)."""
        o = self.options
        parts = [self.path(f"allow3:{t}") for t in o.allowlist_types]
        parts += [self.path(f"ratio3:{t}") for t in o.local_list_types]
        write_text_lines(self.path("auto_local"), sorted(concatenate(parts)))
        order = [t for t in AUTO_GLOBAL_ORDER if t in o.types] + [t for t in o.types if t not in AUTO_GLOBAL_ORDER]
        write_text_lines(self.path("auto_global"), sorted(set(concatenate([self.path(f"2col:{t}") for t in order]))))


def existing_outputs(output_dir: str, options: PipelineOptions) -> List[str]:
    """The pipeline outputs that exist already in the output directory."""
    return [name for name in sorted(set(output_names(options).values()))
            if os.path.lexists(os.path.join(output_dir, name))]


def move_into_place(stage: str, output_dir: str) -> None:
    """Move every entry of the staging directory into the output directory, replacing old ones."""
    for name in sorted(os.listdir(stage)):
        target = os.path.join(output_dir, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)
        os.replace(os.path.join(stage, name), target)


def run_pipeline(run_dir: str, output_dir: Optional[str], options: PipelineOptions, overwrite: bool = False) -> str:
    """Run generate-blocklists.sh on RUN_DIR, writing into output_dir (default RUN_DIR); return output_dir."""
    check_pipeline_options(options)
    if not os.path.isdir(run_dir):
        raise InputError("the run directory does not exist", run_dir)
    output_dir = output_dir or run_dir

    def check() -> None:
        clashes = existing_outputs(output_dir, options)
        if clashes and not overwrite:
            raise InputError(f"{clashes[0]} exists already ({len(clashes)} outputs do); use --overwrite", output_dir)

    identity = {"command": "blocklists pipeline", "run_dir": os.path.abspath(run_dir), "options": repr(options)}
    try:
        claim = ownership.claim_output_dir(output_dir, identity, overwrite, check)  # a killed run's own: continued
        stage = tempfile.mkdtemp(prefix=".blocklists.", suffix=".tmp", dir=output_dir)
    except OSError as err:
        raise InputError(f"cannot write there: {err.strerror}", output_dir) from None
    try:
        PipelineRun(run_dir, stage, options).run()
        lifecycle.enter_phase("blocklists into place")
        move_into_place(stage, output_dir)
    except InputError:
        claim.abandon()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    claim.finish()
    return output_dir


# ----------------------------------------------------------------------------- command line
