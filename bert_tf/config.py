"""Typed run settings: one dataclass per job, each field with its role, its help text and its flag.

A job's config is a dataclass whose fields are declared with `setting(...)`. The field's name is its command-line
flag; `define_flags` defines the absl flags from the fields (type from the annotation, help and choices from the
field), and `from_flags` builds the config from the parsed flags. In Python the config is built directly:

    config = NerConfig(data_path="data", save_model_path="out", epochs=2)

Every field declares its role, and the rules that used to be hand-kept lists follow from the roles:

- RESULT: changes what is trained (data, model, optimization). Fingerprinted: a resumed run must have the same
  values. It also identifies the run that owns an output folder.
- OUTPUT: changes what the command does or writes, but not the trained weights (evaluation, prediction, devices,
  XLA, checkpoint frequency): a resume may change it, a rerun into the same folder must not.
- OPERATIONAL: changes neither (logging, progress, input-pipeline threads, the overwrite and resume switches).
- PUBLISHED_NOOP: accepted for the published command lines, does nothing; the run says so once.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import typing
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

from absl import flags as absl_flags

if typing.TYPE_CHECKING:
    from bert_tf.checkpoints.spec import CheckpointSpec


class Role(enum.Enum):
    """What a setting changes (see the module docstring)."""

    RESULT = "result"
    OUTPUT = "output"
    OPERATIONAL = "operational"
    PUBLISHED_NOOP = "published no-op"


RESULT, OUTPUT, OPERATIONAL, PUBLISHED_NOOP = Role.RESULT, Role.OUTPUT, Role.OPERATIONAL, Role.PUBLISHED_NOOP

Config = TypeVar("Config")


def setting(default: Any, role: Role, help: str, *, choices: Optional[Sequence[str]] = None,
            lower_bound: Optional[int] = None, flag: bool = True, case_sensitive: bool = True) -> Any:
    """A config field: its default, role, help text (the flag's; for a PUBLISHED_NOOP, why it does nothing), for an
    enum its choices (`case_sensitive=False`: the flag takes them in any case and gives the choice as declared), for
    a number the least value its flag accepts. `flag=False`: a Python-only field (no command-line flag)."""
    metadata = {"role": role, "help": help, "choices": tuple(choices) if choices is not None else None, "flag": flag,
                "lower_bound": lower_bound, "case_sensitive": case_sensitive}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def role_of(field: dataclasses.Field) -> Role:
    """The role a field declares."""
    return field.metadata["role"]


def settings_fields(config_type: type) -> List[dataclasses.Field]:
    """The fields of a config class declared with `setting`."""
    return [f for f in dataclasses.fields(config_type) if "role" in f.metadata]


def _base_type(annotation: Any) -> Any:
    """int for Optional[int], list for List[str], ... (the flag's type)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin in (list, List):
        return list
    return annotation


def _field_types(config_type: type) -> Dict[str, Any]:
    module = sys.modules.get(config_type.__module__)
    hints = typing.get_type_hints(config_type, vars(module) if module else None)
    return {name: _base_type(hint) for name, hint in hints.items()}


# A field's type -> the absl function that defines its flag (enums: fields with choices).
FLAG_DEFINERS = {bool: absl_flags.DEFINE_bool, int: absl_flags.DEFINE_integer, float: absl_flags.DEFINE_float,
                 list: absl_flags.DEFINE_list, str: absl_flags.DEFINE_string}


def define_flags(config_type: type, flag_values: absl_flags.FlagValues = absl_flags.FLAGS,
                 module_name: Optional[str] = None) -> None:
    """Define one absl flag per field of `config_type` (skipping flags already defined), as flags of the calling
    module (`module_name`; so that the script's --help lists them)."""
    if module_name is None:
        module_name = sys._getframe(1).f_globals.get("__name__", "__main__")
    if module_name == "__main__":
        module_name = sys.argv[0]
    types = _field_types(config_type)
    for field in settings_fields(config_type):
        if not field.metadata["flag"] or field.name in flag_values:
            continue
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        help_text = field.metadata["help"]
        if role_of(field) is PUBLISHED_NOOP:
            help_text = f"Accepted for the published command lines; does nothing ({help_text})."
        help_text = help_text.replace("%", "%%")
        kind, choices = types[field.name], field.metadata["choices"]
        where = {"flag_values": flag_values, "module_name": module_name}
        if field.metadata.get("lower_bound") is not None:
            where["lower_bound"] = field.metadata["lower_bound"]
        if choices is not None:
            case_sensitive = field.metadata.get("case_sensitive", True)
            absl_flags.DEFINE_flag(absl_flags.EnumFlag(field.name, default, help_text, list(choices),
                                                       case_sensitive=case_sensitive), flag_values, module_name)
        elif kind in FLAG_DEFINERS:
            FLAG_DEFINERS[kind](field.name, default, help_text, **where)
        else:
            raise TypeError(f"{config_type.__name__}.{field.name}: no flag type for {kind!r}")


BOOLEAN_WORDS = ("true", "false")  # the published `--flag True` / `--flag False` (any case)


def published_booleans(argv: Sequence[str], is_boolean: Any) -> List[str]:
    """`argv` with the published space-separated boolean form, `--flag True` / `--flag False` (either case), of
    every flag for which `is_boolean(name)` holds written as `--flag=true` / `--flag=false`, which absl reads.
    The published scripts' argparse (`type=bool`) took any value, `False` too, as true; here `False` is false.
    argv[0] (the program) and everything after `--` are kept as they are."""
    out = list(argv[:1])
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return out + list(argv[index:])
        name = arg.lstrip("-")
        following = argv[index + 1].lower() if index + 1 < len(argv) else ""
        if arg.startswith("-") and "=" not in name and following in BOOLEAN_WORDS and is_boolean(name):
            out.append(f"{arg}={following}")
            index += 2
            continue
        out.append(arg)
        index += 1
    return out


def is_boolean_flag(name: str, flag_values: absl_flags.FlagValues = absl_flags.FLAGS) -> bool:
    """Whether `name` is a defined boolean flag."""
    return name in flag_values and bool(flag_values[name].boolean)


def parse_command_line(argv: Sequence[str], flag_values: absl_flags.FlagValues = absl_flags.FLAGS) -> List[str]:
    """The scripts' absl flags parser (`app.run(main, flags_parser=...)`): the published `--flag True` / `--flag
    False` form of the boolean flags rewritten, then absl's parse; a flag absl refuses (unknown, a bad value) is bad
    input: one line `error: ...` on stderr, exit status 2. Returns the arguments left after the flags."""
    from bert_tf.errors import EXIT_INPUT_ERROR

    try:
        return flag_values(published_booleans(argv, lambda name: is_boolean_flag(name, flag_values)))
    except absl_flags.Error as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)


def from_flags(config_type: Type[Config], flag_values: absl_flags.FlagValues = absl_flags.FLAGS,
               **overrides: Any) -> Config:
    """The config of the parsed flags (a field's value is its flag's), with `overrides` applied."""
    values = {f.name: flag_values[f.name].value for f in settings_fields(config_type) if f.metadata["flag"]}
    return config_type(**{**values, **overrides})


def values(config: Any, roles: Iterable[Role] = tuple(Role)) -> Dict[str, Any]:
    """The fields of `roles` (default: all) by name, JSON-serialisable (lists kept, tuples as lists)."""
    wanted = set(roles)
    out = {}
    for field in settings_fields(type(config)):
        if role_of(field) in wanted:
            value = getattr(config, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def file_stamps(data_files: Sequence[str]) -> Dict[str, str]:
    """Each data file's size and modification time ("missing" when absent), keyed by its absolute path."""
    stamps = {}
    for path in data_files:
        key = f"file {os.path.abspath(path)}"
        try:
            stat = os.stat(path)
        except OSError:  # a missing input is reported where it is read, as bad input
            stamps[key] = "missing"
            continue
        stamps[key] = f"{stat.st_size} bytes, modified {int(stat.st_mtime)}"
    return stamps


def fingerprint(config: Any, data_files: Sequence[str] = ()) -> Dict[str, Any]:
    """What a resumed training run must share with the run it resumes: the RESULT settings and the data files."""
    return {**values(config, [RESULT]), **file_stamps(data_files)}


def identity(config: Any, command: str, data_files: Sequence[str] = ()) -> Dict[str, Any]:
    """What makes two commands the same run (for the claim on an output folder): the command, the RESULT and
    OUTPUT settings, the data files."""
    return {"command": command, **values(config, [RESULT, OUTPUT]), **file_stamps(data_files)}


def published_noops_given(config: Any) -> List[Tuple[str, Any, str]]:
    """(name, value, why it does nothing) for each PUBLISHED_NOOP field set to something other than its default."""
    given = []
    for field in settings_fields(type(config)):
        if role_of(field) is PUBLISHED_NOOP and getattr(config, field.name) != field.default:
            given.append((field.name, getattr(config, field.name), field.metadata["help"]))
    return given


def note_published_noops(config: Any) -> List[str]:
    """One notice per published no-op setting given (see PUBLISHED_NOOP); their names."""
    from bert_tf.cli import notice

    given = published_noops_given(config)
    for name, value, why in given:
        notice(f"--{name}={value} does nothing here: {why}")
    return [name for name, _, _ in given]


def check_at_least(config: Any, minimum: int, names: Iterable[str]) -> None:
    """InputError naming the first of `names` whose value is below `minimum`."""
    from bert_tf.errors import InputError

    for name in names:
        value = getattr(config, name)
        if value is not None and value < minimum:
            raise InputError(f"--{name}={value}: must be at least {minimum}")


# ----- the settings every job shares --------------------------------------------------------------------------
DISTRIBUTIONS = ("auto", "one_device", "mirrored", "multi_worker")
AMP_DTYPES = ("auto", "float16", "bfloat16")


@dataclasses.dataclass
class SharedSettings:
    """The settings of every job: the pretrained checkpoint, optimization basics, devices and precision, the
    output folder's rules, resume checkpoints, logging."""

    bert_model: Optional[str] = setting(None, RESULT, (
        "Pretrained BERT: a Hugging Face Hub id (owner/name, resolved in the Hub cache, downloaded when missing and "
        "online), a Hugging Face directory (config.json, model.safetensors, vocab.txt or tokenizer.json), a TF1 "
        "checkpoint directory, a keras-hub preset (directory, name or kaggle:// handle), or a model saved by "
        "bert-tf."))
    revision: Optional[str] = setting(None, RESULT, (
        "With a Hub id in --bert_model: the branch, tag or commit to use (default: main); run_config.json records "
        "the commit it resolved to."))
    bert_config_file: Optional[str] = setting(None, RESULT, (
        "NVIDIA/Google style: bert_config.json of a TF1 checkpoint (with --vocab_file and --init_checkpoint, "
        "instead of --bert_model)."))
    vocab_file: Optional[str] = setting(None, RESULT, (
        "NVIDIA/Google style: the checkpoint's vocab.txt (default: vocab.txt beside --bert_config_file)."))
    init_checkpoint: Optional[str] = setting(None, RESULT, (
        "NVIDIA/Google style: the TF1 checkpoint prefix (e.g. model.ckpt-1000000) or its directory."))
    do_lower_case: Optional[bool] = setting(None, RESULT, (
        "Lower-case (and strip accents from) the input. Default: what the checkpoint's tokenizer_config.json says "
        "(cased FinBERT/BioBERT: false)."))
    learning_rate: float = setting(5e-5, RESULT, "Peak learning rate.")
    weight_decay: float = setting(0.01, RESULT, "AdamW weight decay (not applied to LayerNorm weights and biases).")
    seed: int = setting(42, RESULT, "Random seed (weights of the new head, dropout, data order, splits).")
    use_xla: bool = setting(False, OUTPUT, "Compile the training and prediction steps with XLA (jit_compile).")
    use_amp: bool = setting(False, RESULT, (
        "Mixed precision: the model computes in float16 (dynamic loss scaling) on GPUs, bfloat16 on CPUs with "
        "native bfloat16 (AMX or AVX512-BF16); the run prints what it used. Faster, but every probability is "
        "perturbed (a few labels near a tie flip): not the published setting, whose model ran in float32."))
    amp_dtype: str = setting("auto", RESULT, (
        "With --use_amp: auto (float16 on GPUs, bfloat16 on CPUs), float16, or bfloat16 (no loss scaling; GPUs of "
        "compute capability 8.0+ or a CPU)."), choices=AMP_DTYPES)
    overwrite_output_dir: bool = setting(False, OPERATIONAL, "Allow writing into a non-empty output directory.")
    distribution: str = setting("auto", OUTPUT, (
        "tf.distribute strategy: auto (mirrored with >1 GPU, else one device), one_device, mirrored (all local "
        "GPUs), multi_worker (SLURM or TF_CONFIG)."), choices=DISTRIBUTIONS)
    do_predict: bool = setting(False, OUTPUT, (
        "Predict with a saved model (no training unless --do_train is given)."))
    save_checkpoints_steps: int = setting(10000, OUTPUT, (
        "Save the full training state every N steps (and at every epoch's end and on SIGTERM); 0: only at epoch "
        "ends. A killed run resumes when the same command is run again. 10,000 as the published code."))
    keep_checkpoints: bool = setting(False, OPERATIONAL, (
        "Keep the resume checkpoints (<output>/checkpoints) of a training run that ended normally; by default they "
        "are deleted then (the saved model stays)."))
    resume: bool = setting(True, OPERATIONAL, (
        "Resume from the training state in the output directory when there is one (--noresume with "
        "--overwrite_output_dir starts over)."))
    deterministic: bool = setting(False, OUTPUT, (
        "Enable TensorFlow op determinism (bitwise reproducible on CPU; slower)."))
    log_every: int = setting(10, OPERATIONAL, "Update the progress bar (and check the loss) every N steps.")
    verbose: bool = setting(True, OPERATIONAL, "Print progress bars and per-epoch figures.")
    verbose_tf: bool = setting(False, OPERATIONAL, (
        "Show TensorFlow's own start-up and C++ log lines (hidden by default; read from the command line before "
        "TensorFlow starts, see bert_tf/quiet.py)."))
    tensorboard: bool = setting(True, OUTPUT, (
        "Write TensorBoard event files under <output>/tensorboard (training loss, learning rate, throughput every "
        "--log_every steps; validation metrics); view them with `tensorboard --logdir <output>/tensorboard`."))
    class_weights: str = setting("none", RESULT, (
        "Loss weight per label: none; balanced (n / (k * count) from the training labels); or a file of "
        "label<TAB>weight lines (unnamed labels: 1). The loss is the weighted mean; evaluation is unweighted."))
    horovod: bool = setting(False, OUTPUT, (
        "The published Horovod launch: under mpiexec/mpirun (Open MPI or MPICH variables) every rank becomes a "
        "worker of a multi-worker run on this node, pinned to the GPU of its local rank; the batch size is per "
        "rank (global = batch x ranks). Alone: one process."))

    @property
    def checkpoint_spec(self) -> "CheckpointSpec":
        """Where the pretrained checkpoint is (--bert_model or NVIDIA's trio)."""
        from bert_tf.checkpoints.spec import CheckpointSpec

        return CheckpointSpec(self.bert_model, self.revision, self.bert_config_file, self.vocab_file,
                              self.init_checkpoint, self.do_lower_case)
