"""The classifier's settings (run_classifier.py's flags) as a typed config, and its checks.

    from bert_tf.classifier.config import ClassifierConfig
    cfg = ClassifierConfig(data_dir="data", output_dir="out", bert_model="/models/biobert", do_train=True)

`CorpusSettings` holds the corpus prediction settings, shared with the corpus command line
(`python -m bert_tf.classifier.corpus`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional


from bert_tf import config
from bert_tf.classifier import published_flags
from bert_tf.config import OUTPUT, PUBLISHED_NOOP, RESULT, SharedSettings, setting
from bert_tf.errors import InputError

NOOPS = published_flags.IGNORED_FLAGS
SHARD_ID_MODES = ("stem", "last_field")
POOLINGS = ("pooler", "cls", "mention")
OPTIMIZERS = ("adamw", "lamb")
TASK_NAMES = ("consensus",)
BATCH_SIZES = ("train_batch_size", "eval_batch_size", "predict_batch_size")


@dataclasses.dataclass
class CorpusSettings:
    """Where --do_predict reads and writes, and how a corpus of shards is split between processes."""

    predict_file: Optional[str] = setting(None, OUTPUT, (
        "Input for --do_predict (default: <data_dir>/test.tsv): a file, or a corpus of shards: a folder (its "
        "*.tsv), a glob pattern (quoted), or @LIST (a file naming one input a line). A corpus is predicted in one "
        "process; shards whose outputs exist are skipped."))
    predict_output_dir: Optional[str] = setting(None, OUTPUT, "Where --do_predict writes (default: --output_dir).")
    shard_id: str = setting("stem", OUTPUT, (
        "How a corpus shard NAME.tsv names its outputs (output_with_probabilities_ID.tsv): stem (ID = NAME) or "
        "last_field (the text after NAME's last '-', e.g. 042 of ggp-contexts-w100-042.tsv, as the published "
        "pipeline)."), choices=SHARD_ID_MODES)
    shard_index: Optional[int] = setting(None, OUTPUT, (
        "With --num_shard_groups=N: this process's group, 0..N-1 (default: $SLURM_ARRAY_TASK_ID); it predicts the "
        "shards j with j % N == index."))
    num_shard_groups: int = setting(1, OUTPUT, (
        "Split a corpus between N independent processes (SLURM array tasks, single-GPU jobs): shard j goes to "
        "group j % N."))
    seed_compatible_outputs: bool = setting(False, OUTPUT, (
        "Also write the published pipeline's 8-column output_with_probabilities_dict.tsv (for a corpus: "
        "published/test_output_labels_ID.txt and published/output_with_probabilities_ID.tsv, the 8-column file "
        "under its published name). test_results.tsv (no header) and test_output_labels.txt are written for one "
        "input anyway."))


@dataclasses.dataclass
class ClassifierConfig(SharedSettings, CorpusSettings):
    """Every setting of run_classifier.py (the field name is the flag)."""

    learning_rate: float = setting(5e-6, RESULT, "Peak learning rate.")
    task_name: str = setting("consensus", RESULT, (
        "The data format (one DataProcessor per format); any case, as the published script lower-cased it."),
        choices=TASK_NAMES, case_sensitive=False)
    data_dir: Optional[str] = setting(None, RESULT, (
        "Folder with train.tsv, dev.tsv, test.tsv (six tab-separated columns)."))
    output_dir: Optional[str] = setting(None, RESULT, "Output folder: model, reports, plots, predictions.")
    labels_file: Optional[str] = setting(None, RESULT, (
        "Label set, one a line, in sorted order (the published code's order of the probability columns; default: "
        "the sorted labels of train.tsv)."))
    keep_labels_order: bool = setting(False, RESULT, (
        "Accept a --labels_file that is not sorted and keep its order for the probability columns (the published "
        "scripts that read test_results.tsv assume sorted labels)."))
    labels_dir: Optional[str] = setting(None, RESULT, (
        "Published-pipeline style: a folder holding labels.txt, whose labels are sorted as the published code "
        "sorts them (instead of --labels_file)."))
    max_seq_length: int = setting(128, RESULT, "Sequence length in sub-tokens; the mention starts at its middle.")
    do_train: bool = setting(False, RESULT, "Train on train.tsv (validating on dev.tsv after every epoch).")
    do_eval: bool = setting(False, OUTPUT, (
        "Evaluate on dev.tsv: eval_results.txt (key = value, as Google's and NVIDIA's run_classifier.py), "
        "eval_report.txt, eval_results.json, confusion_matrix.png."))
    train_batch_size: int = setting(64, RESULT, (
        "Global training batch size (split across replicas; per rank under --horovod). The default is the "
        "published script's."))
    eval_batch_size: int = setting(64, OUTPUT, "Evaluation batch size.")
    predict_batch_size: int = setting(64, OUTPUT, "Prediction batch size.")
    num_train_epochs: float = setting(3.0, RESULT, "Training epochs (a fraction trains part of the last epoch).")
    warmup_proportion: float = setting(0.1, RESULT, "Fraction of the training steps with linear warm-up.")
    replace_span: Optional[str] = setting(None, RESULT, (
        "Replace the mention with this single token (published runs: [unused1])."))
    optimizer: str = setting("adamw", RESULT, "Optimizer.", choices=OPTIMIZERS)
    classifier_dropout: float = setting(0.1, RESULT, "Dropout on the pooled vector (see --pooling).")
    cache_dir: Optional[str] = setting(None, OUTPUT, (
        "Feature cache root (default: <output_dir>/feature_cache); share it between runs on the same data, e.g. in "
        "a grid search."))
    featurize_workers: Optional[int] = setting(None, OUTPUT, (
        "Processes that featurize a data file into the feature cache (default: the usable cores, at most 8; 1: in "
        "this process)."), lower_bound=1)
    pooling: str = setting("pooler", RESULT, (
        "What the classifier reads: pooler (the pretrained tanh pooler over [CLS], the published setting), cls (the "
        "raw [CLS] state) or mention (the state of the mention's first token, position max_seq_length/2; the "
        "--replace_span marker when given). Saved with the model."), choices=POOLINGS)
    calibrate: bool = setting(True, OUTPUT, (
        "After --do_train, fit a temperature on dev.tsv (minimum NLL) and record it with the model (eval_results "
        "reports ECE and NLL before and after); the probabilities stay the raw softmax, which the published "
        "blocklist thresholds were set on, unless --apply_temperature."))
    apply_temperature: bool = setting(False, RESULT, (
        "Calibrated probabilities: fold the temperature fitted by --calibrate into the classifier (with --do_train: "
        "into the saved model; with a saved model: into this run's evaluation and predictions). Off: raw softmax, "
        "as the published pipeline."))
    use_fp16: bool = setting(False, RESULT, (
        "Accepted from published command lines; changes nothing: the published --use_fp16 only changed the "
        "optimizer (loss scaling, float16 compression of Horovod's gradient all-reduce) while the model stayed "
        "float32 (its automatic mixed precision switch is commented out). --use_amp is mixed precision."))
    # The published command lines' flags that do nothing here (bert_tf.classifier.published_flags: why, which is
    # also the notice's reason).
    do_prepare: Optional[str] = setting(None, PUBLISHED_NOOP, NOOPS["do_prepare"])
    cased: Optional[str] = setting(None, PUBLISHED_NOOP, NOOPS["cased"])
    master: Optional[str] = setting(None, PUBLISHED_NOOP, NOOPS["master"])
    iterations_per_loop: Optional[str] = setting(None, PUBLISHED_NOOP, NOOPS["iterations_per_loop"])


def check(cfg: ClassifierConfig) -> None:
    """Reject settings that cannot work, before anything is read or written (InputError)."""
    if not (cfg.do_train or cfg.do_eval or cfg.do_predict):
        raise InputError("nothing to do: give at least one of --do_train, --do_eval, --do_predict")
    if not cfg.output_dir:
        raise InputError("--output_dir is required")
    if cfg.task_name.lower() not in TASK_NAMES:
        raise InputError(f"--task_name={cfg.task_name}: unknown task (known: {', '.join(TASK_NAMES)}, any case)")
    if cfg.max_seq_length < 8:
        raise InputError(f"--max_seq_length={cfg.max_seq_length}: must be at least 8")
    config.check_at_least(cfg, 1, BATCH_SIZES)
    if cfg.num_train_epochs <= 0:
        raise InputError(f"--num_train_epochs={cfg.num_train_epochs}: must be positive")
    if not 0.0 <= cfg.warmup_proportion < 1.0:
        raise InputError(f"--warmup_proportion={cfg.warmup_proportion}: must be in [0, 1)")
    if (cfg.do_train or cfg.do_eval) and not cfg.data_dir:
        raise InputError("--data_dir is required for --do_train and --do_eval")
    if cfg.labels_file and cfg.labels_dir:
        raise InputError("give --labels_file or --labels_dir, not both")


def with_horovod(cfg: ClassifierConfig) -> ClassifierConfig:
    """The config with --horovod applied: the distribution it launches and the global training batch (the
    per-rank --train_batch_size times the ranks); the same config without --horovod."""
    if not cfg.horovod:
        return cfg
    from bert_tf import distribution  # TensorFlow: not for the corpus command line

    name, batch = distribution.horovod_batch(cfg.horovod, cfg.distribution, cfg.train_batch_size, "train_batch_size")
    return dataclasses.replace(cfg, distribution=name, train_batch_size=batch)

