"""Corpus prediction: the input shards a --predict_file names, their output files, which are done, and which
shards a process of a group of independent jobs takes.

A --predict_file is one of:
  FILE          one input; outputs test_results.tsv, output_with_probabilities.tsv (no shard id)
  DIR           every *.tsv directly in DIR, sorted by name
  GLOB          every file matching a pattern with * ? or [...], sorted by name (quote it for the shell)
  @LIST         the paths in the text file LIST, one a line, in that order; blank lines and lines
                starting with # are skipped; relative paths are relative to LIST's folder
For every input NAME.tsv of a corpus the outputs carry the shard id: test_results_ID.tsv,
output_with_probabilities_ID.tsv, where ID is NAME (--shard_id=stem) or the text after the last '-'
of NAME (--shard_id=last_field: ggp-contexts-w100-042.tsv -> 042, as the published pipeline names them).
A shard is done when all its outputs exist: each is written under a temporary name and renamed when
complete, so a killed run loses at most the shard in flight.

Each shard's outputs have a record of what produced them, shard_info_ID.json (shard_info.json for one input),
written before its outputs: the digest of the model's weights (backbone and head), the labels, the length,
the replacement token, the pooling, the temperature folded into the probabilities and the precision. A rerun
skips a done shard only when its record is the run's; otherwise it stops, naming the shard and the difference,
unless --overwrite_output_dir.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import flags

from bert_tf import config
from bert_tf.classifier import prediction_files
from bert_tf.classifier.config import SHARD_ID_MODES, CorpusSettings
from bert_tf.errors import InputError
from bert_tf.io_utils import (GLOB_CHARACTERS, LIST_PREFIX, expand_input, load_json, remove_atomic_leftovers,
                              write_json_atomic)

ARRAY_TASK_ENV = "SLURM_ARRAY_TASK_ID"
RECORD_PREFIX = "shard_info"
# What decides a shard's probabilities, in the order a difference is reported (the weights digest last: a
# folded temperature changes the weights too, and is named as such).
PROVENANCE_KEYS = ("labels", "extra_logits", "max_seq_length", "replace_span", "pooling", "temperature",
                   "precision", "model_digest")
COMMANDS = ("pending", "count")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Define the corpus prediction flags (this module's command line's; run_classifier.py's come with its config),
    from the fields of bert_tf.classifier.config.CorpusSettings."""
    config.define_flags(CorpusSettings, flag_values)


@dataclasses.dataclass(frozen=True)
class Shard:
    """One input file of a prediction and the files it gets."""

    position: int  # 0-based position in the corpus listing (decides its group)
    input: str
    shard_id: str  # "" for a single input file
    outputs: Dict[str, str]  # role (prediction_files.*_OUTPUT) -> path
    record: str = ""  # shard_info_ID.json: what produced the outputs

    def done(self) -> bool:
        """Whether every output file exists (each is renamed into place only when complete)."""
        return all(os.path.isfile(path) for path in self.outputs.values())

    def partial_outputs(self) -> List[str]:
        """The outputs of an unfinished shard that already exist (a run killed between two renames)."""
        return [path for path in self.outputs.values() if os.path.isfile(path)]


def list_inputs(spec: str) -> Tuple[List[str], bool]:
    """The input files of a --predict_file value (a folder's *.tsv files) and whether it names a corpus (anything
    but one plain file)."""
    if not spec.startswith(LIST_PREFIX) and not os.path.exists(spec) and not any(c in spec for c in GLOB_CHARACTERS):
        raise InputError("prediction input does not exist (a file, a folder, a glob pattern or @LIST)", spec)
    return expand_input(spec, "*.tsv")


def shard_id(path: str, mode: str) -> str:
    """The id a corpus input's outputs carry: its name without extension, or (last_field) the text after
    the name's last '-'."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if mode == "last_field":
        return stem.rsplit("-", 1)[-1]
    if mode != "stem":
        raise InputError(f"--shard_id={mode}: must be one of {', '.join(SHARD_ID_MODES)}")
    return stem


def plan_shards(inputs: Sequence[str], corpus: bool, out_dir: str, id_mode: str,
                seed_compatible: bool) -> List[Shard]:
    """Every input with its output paths; InputError when two inputs would write the same files."""
    shards: List[Shard] = []
    seen: Dict[str, str] = {}
    for position, path in enumerate(inputs):
        sid = shard_id(path, id_mode) if corpus else ""
        if sid in seen:
            raise InputError(f"gives the same shard id {sid!r} as {seen[sid]}: their outputs would collide "
                             "(try --shard_id=stem)", path)
        seen[sid] = path
        names = prediction_files.output_names(sid, seed_compatible)
        shards.append(Shard(position, path, sid, {role: os.path.join(out_dir, n) for role, n in names.items()},
                            os.path.join(out_dir, record_name(sid))))
    return shards


def record_name(sid: str) -> str:
    """The file name of a shard's record (shard_info_ID.json; shard_info.json for one input)."""
    return f"{RECORD_PREFIX}_{sid}.json" if sid else f"{RECORD_PREFIX}.json"


def provenance(model_digest: str, labels: Sequence[str], extra_logits: int, max_seq_length: int,
               replace_span: Optional[str], pooling: str, temperature: float, precision: str) -> Dict[str, Any]:
    """What decides a shard's probabilities (PROVENANCE_KEYS), as its record stores it."""
    return {"model_digest": model_digest, "labels": list(labels), "extra_logits": int(extra_logits),
            "max_seq_length": int(max_seq_length), "replace_span": replace_span, "pooling": pooling,
            "temperature": float(temperature), "precision": precision}


def read_record(path: str) -> Optional[Dict[str, Any]]:
    """A shard record's contents; None when there is none; InputError when it is not a JSON object."""
    if not os.path.isfile(path):
        return None
    return load_json(path)


def write_record(shard: Shard, record: Dict[str, Any], model: str) -> None:
    """Record what produces a shard's outputs (before they are written), with the model's path for people."""
    write_json_atomic(shard.record, {**record, "model": model, "input": os.path.abspath(shard.input)})


def record_difference(recorded: Dict[str, Any], current: Dict[str, Any]) -> Optional[str]:
    """The first setting in which two records differ, in words ("model_digest 1a2b3c4d5e6f (recorded) vs ...");
    None when they agree."""
    for key in PROVENANCE_KEYS:
        if recorded.get(key) != current.get(key):
            return f"{key} {_short(recorded.get(key))} vs {_short(current.get(key))}"
    return None


def _short(value: Any) -> str:
    """A setting as an error message shows it (digests cut to 12 characters)."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return json.dumps(value)


def check_done_shards(shards: Sequence[Shard], current: Dict[str, Any]) -> None:
    """InputError naming the first done shard that this run's settings did not make (another model, length,
    temperature, precision, ...) or that has no record."""
    for shard in shards:
        if not shard.done():
            continue
        output = shard.outputs[prediction_files.PROBABILITIES_OUTPUT]
        recorded = read_record(shard.record)
        if recorded is None:
            raise InputError(f"shard {shard.shard_id or shard.input} has outputs but no {os.path.basename(shard.record)}: "
                             "nothing says which model made them; use --overwrite_output_dir to predict every shard "
                             "again", output)
        difference = record_difference(recorded, current)
        if difference is not None:
            raise InputError(f"shard {shard.shard_id or shard.input} was predicted by another setting "
                             f"({difference}, recorded vs this run); use --overwrite_output_dir to predict every "
                             "shard again with this one, or another --predict_output_dir", output)


def check_folder_consistent(directory: str) -> None:
    """InputError naming two shards of a predictions folder whose records disagree (two models mixed)."""
    records = sorted(glob.glob(os.path.join(glob.escape(directory), f"{RECORD_PREFIX}*.json")))
    first: Optional[Tuple[str, Dict[str, Any]]] = None
    for path in records:
        record = read_record(path)
        if first is None:
            first = (path, record)
            continue
        difference = record_difference(first[1], record)
        if difference is not None:
            raise InputError(f"the shards of this folder were predicted by different settings: "
                             f"{os.path.basename(first[0])} and {os.path.basename(path)} differ in {difference}; "
                             "predict them again with one model (--overwrite_output_dir)", directory)


def resolve_group(shard_index: Optional[int], num_groups: int) -> int:
    """This process's group: --shard_index, else $SLURM_ARRAY_TASK_ID when there are several groups."""
    if num_groups < 1:
        raise InputError(f"--num_shard_groups={num_groups}: must be at least 1")
    if shard_index is None:
        if num_groups == 1:
            return 0
        value = os.environ.get(ARRAY_TASK_ENV, "")
        if not value.isdigit():
            raise InputError(f"--num_shard_groups={num_groups} needs --shard_index (or {ARRAY_TASK_ENV})")
        shard_index = int(value)
    if not 0 <= shard_index < num_groups:
        raise InputError(f"shard index {shard_index}: must be in 0..{num_groups - 1} (--num_shard_groups={num_groups})")
    return shard_index


def group_shards(shards: Sequence[Shard], group: int, num_groups: int) -> List[Shard]:
    """The shards of one group: shard j goes to group j % num_groups, so no shard is in two groups."""
    return [s for s in shards if s.position % num_groups == group]


def remove_stale_temporaries(shard: Shard) -> None:
    """Remove the temporary files a killed run left for this shard's outputs (names as io_utils.atomic_path)."""
    remove_atomic_leftovers(shard.outputs.values())


def check_recorded_model(shards: Sequence[Shard], model: str) -> None:
    """InputError naming the first done shard whose record is missing or names another model path: what a
    launcher, which does not load the model, can check before it decides that nothing is left to submit."""
    model = os.path.abspath(model)
    for shard in shards:
        if not shard.done():
            continue
        recorded = read_record(shard.record)
        path = str((recorded or {}).get("model"))
        if recorded is None or not (path == model or path.startswith(model + os.sep)):  # a folder's TF1 prefix
            found = "no record" if recorded is None else f"model {recorded.get('model')}"
            raise InputError(f"shard {shard.shard_id or shard.input} was predicted by another model ({found}, not "
                             f"{model}); pass --overwrite_output_dir to predict every shard again",
                             shard.outputs[prediction_files.PROBABILITIES_OUTPUT])


def pending_groups(spec: str, out_dir: str, id_mode: str, num_groups: int, seed_compatible: bool = False,
                   model: Optional[str] = None, overwrite: bool = False) -> List[int]:
    """The groups (0..num_groups-1) that still have a shard without all its outputs (every group with
    `overwrite`); with `model`, InputError when a done shard was made by another one (check_recorded_model)."""
    inputs, is_corpus = list_inputs(spec)
    shards = plan_shards(inputs, is_corpus, out_dir, id_mode, seed_compatible)
    if overwrite:
        return sorted({s.position % num_groups for s in shards})
    if model:
        check_recorded_model(shards, model)
    return sorted({s.position % num_groups for s in shards if not s.done()})


def run_command(command: str, values: flags.FlagValues) -> str:
    """What `command` prints: the shard count, or the pending shard groups separated by spaces."""
    if command == "count":
        return str(len(list_inputs(values.predict_file)[0]))
    resolve_group(0, values.num_shard_groups)
    groups = pending_groups(values.predict_file, values.predict_output_dir or ".", values.shard_id,
                            values.num_shard_groups, values.seed_compatible_outputs,
                            values.model if "model" in values else None,
                            bool(values.overwrite) if "overwrite" in values else False)
    return " ".join(map(str, groups))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m bert_tf.classifier.corpus pending|count --predict_file=SPEC [run_classifier.py's corpus flags]`:
    the pending shard groups of a corpus, or its shard count (for scripts/predict_corpus.sh); bad input prints
    'error: ...' and returns 2."""
    import sys

    values = flags.FlagValues()
    define_flags(values)
    flags.DEFINE_string("model", None, "pending: the model path the finished shards' records must name "
                        "(check_recorded_model)", flag_values=values)
    flags.DEFINE_bool("overwrite", False, "pending: every group (--overwrite_output_dir)", flag_values=values)
    try:
        commands = values([sys.argv[0]] + list(sys.argv[1:] if argv is None else argv))[1:]
    except flags.Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(commands) != 1 or commands[0] not in COMMANDS or not values.predict_file:
        print(f"error: usage: python -m bert_tf.classifier.corpus {'|'.join(COMMANDS)} --predict_file=SPEC "
              "[--predict_output_dir=DIR --shard_id=MODE --num_shard_groups=N --seed_compatible_outputs "
              "--model=PATH --overwrite]",
              file=sys.stderr)
        return 2
    try:
        print(run_command(commands[0], values))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
