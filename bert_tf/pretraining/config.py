"""The settings of continued masked-LM pretraining (run_pretraining.py's flags): `PretrainingConfig`, its checks
(`check`) and the --horovod launch (`with_horovod`)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from bert_tf.config import OUTPUT, PUBLISHED_NOOP, RESULT, SharedSettings, check_at_least, setting
from bert_tf.errors import InputError
from bert_tf.optimization import LAMB_DECAYS, SCHEDULES

COMMAND = "run_pretraining.py"


@dataclasses.dataclass
class PretrainingConfig(SharedSettings):
    """Continued masked-LM (and next-sentence) pretraining of a checkpoint on text or TFRecords."""

    input_files: Optional[str] = setting(None, RESULT, (
        "Training text: a file, a folder, a quoted glob or @LIST, comma-separated: raw text in Google's format "
        "(.txt: one sentence a line, a blank line between documents), NER CSV or CoNLL (the words), consensus TSV (the contexts); "
        "or TFRecords of create_pretraining_data.py."))
    input_files_dir: Optional[str] = setting(None, RESULT, (
        "NVIDIA's flag: a folder of create_pretraining_data.py TFRecords (or of text files) to train on."))
    eval_files_dir: Optional[str] = setting(None, RESULT, (
        "Held-out data (a folder, file, glob or @LIST; text or TFRecords) instead of --eval_fraction of the training "
        "documents."))
    output_dir: Optional[str] = setting(None, RESULT, (
        "Output folder: model/ (a Hugging Face BertForMaskedLM directory that run_ner.py and run_classifier.py take "
        "as --bert_model), history, curves, report.html."))
    do_train: bool = setting(True, RESULT, "Train.")
    do_eval: bool = setting(True, OUTPUT, "Evaluate on the held-out part before training and at every validation.")
    train_batch_size: int = setting(16, RESULT, (
        "Sequences per micro-step over all replicas; one optimizer step takes train_batch_size x "
        "num_accumulation_steps sequences."))
    eval_batch_size: int = setting(16, OUTPUT, "Sequences per evaluation batch.")
    max_seq_length: int = setting(128, RESULT, "Block length in tokens ([CLS] and [SEP] included).")
    max_predictions_per_seq: int = setting(20, RESULT, "Most masked positions per sequence.")
    masked_lm_prob: float = setting(0.15, RESULT, (
        "Share of a sequence's tokens to predict (80% [MASK], 10% random, 10% kept)."))
    whole_word_masking: bool = setting(True, RESULT, "Mask all pieces of a word together.")
    num_train_steps: Optional[int] = setting(None, RESULT, "Optimizer steps to train.")
    num_warmup_steps: Optional[int] = setting(None, RESULT, (
        "Linear warm-up steps (default: 10% of --num_train_steps); then the decay of --learning_rate_schedule."))
    learning_rate_schedule: str = setting("published", RESULT, (
        "published: NVIDIA's run_pretraining.py schedule: after the warm-up, LAMB decays as peak x (1 - step / "
        "total) ^ 0.5 counted from step 0 (so the rate drops at the end of the warm-up), Adam linearly to 0; linear: "
        "after the warm-up both decay linearly from the peak to 0."), choices=SCHEDULES)
    lamb_weight_decay: str = setting("trust_ratio", RESULT, (
        "trust_ratio: as NVIDIA's LAMB, --weight_decay x weight is added to the Adam update before the trust ratio "
        "(the ratio scales it); decoupled: the weights are decayed by lr x --weight_decay apart from the LAMB step "
        "(Keras' Lamb plus a decay step; at LAMB-scale rates a much stronger decay)."), choices=LAMB_DECAYS)
    scale_learning_rate_by_ranks: bool = setting(True, RESULT, (
        "With --horovod: the peak rate is --learning_rate x the MPI ranks, as NVIDIA's run_pretraining.py (the "
        "published scripts' rates are per rank); --noscale_learning_rate_by_ranks: --learning_rate as given."))
    horovod_ranks: int = setting(1, RESULT, "The MPI ranks of a --horovod launch (set by the launch).", flag=False)
    head_warmup_steps: Optional[int] = setting(None, RESULT, (
        "Steps that train the masked-LM head alone (encoder and embeddings frozen) at --head_warmup_learning_rate "
        "before the --num_train_steps of the whole model, so that a new head's random gradients never reach the "
        "encoder. Default: 10% of --num_train_steps (at least 1) when the checkpoint has no masked-LM head (e.g. "
        "a sentence-embedding BERT), 0 when it has one; 0: off."))
    head_warmup_learning_rate: float = setting(1e-3, RESULT, "Constant learning rate of the head warm-up.")
    num_accumulation_steps: int = setting(1, RESULT, (
        "Micro-batches whose gradients are summed into one update (exactly one step of the k-times larger batch)."))
    optimizer_type: str = setting("lamb", RESULT, "Optimizer (LAMB as NVIDIA's pretraining).",
                                  choices=("lamb", "adamw"))
    eval_fraction: float = setting(0.05, RESULT, (
        "Share of the training documents held out for evaluation (without --eval_files_dir)."))
    shuffle_buffer: int = setting(10_000, RESULT, (
        "Text: blocks in the seeded shuffle buffer the input streams through (memory about 0.6 MiB a thousand "
        "blocks of 128 tokens; the files' order is shuffled too)."))
    num_validate_during_training: int = setting(1, RESULT, (
        "Held-out evaluations per epoch, the last at its end (unless --eval_every_steps)."))
    eval_every_steps: int = setting(0, RESULT, (
        "Evaluate on the held-out data every N optimizer steps and at the end (0: --num_validate_during_training "
        "per epoch)."))
    max_eval_steps: int = setting(0, OUTPUT, (
        "Held-out batches each evaluation reads (NVIDIA's flag; its default there is 100); 0: the whole held-out "
        "data."))
    keep_checkpoint_max: int = setting(5, OUTPUT, (
        "Model snapshots kept: every --save_checkpoints_steps the model is written as OUTPUT/model.ckpt-STEP (a "
        "Hugging Face directory that --bert_model takes and `python -m bert_tf.checkpoints.export` exports, "
        "--format=tf1 for the TF1 tools); the last N stay (TensorFlow's Estimator keeps 5); 0: none."))
    next_sentence_prediction: str = setting("auto", RESULT, (
        "auto: train next-sentence prediction beside masked LM when the TFRecords carry next_sentence_labels and the "
        "checkpoint has the head (cls/seq_relationship), as NVIDIA's run_pretraining.py; off: masked LM alone."),
        choices=("auto", "off"))
    use_fp16: bool = setting(False, RESULT, "NVIDIA's name for --use_amp (the published BioBERT scripts).")
    amp: bool = setting(False, RESULT, "NVIDIA's later name for --use_amp (its default there is on).")
    report_loss: bool = setting(True, PUBLISHED_NOOP, "the loss is always reported")
    dllog_path: Optional[str] = setting(None, PUBLISHED_NOOP, (
        "no DLLogger file; the figures are in history.csv, eval_results.txt and TensorBoard"))
    allreduce_post_accumulation: bool = setting(False, PUBLISHED_NOOP, (
        "the accumulated gradient is always all-reduced once per update, after accumulation"))
    display_loss_steps: int = setting(1, PUBLISHED_NOOP, "the progress is shown every --log_every steps")
    iterations_per_loop: int = setting(1000, PUBLISHED_NOOP, "TPU Estimator setting; there is no TPU loop here")
    init_loss_scale: int = setting(2 ** 32, PUBLISHED_NOOP, (
        "with --use_amp on GPUs Keras' dynamic loss scale starts at 2^15 and adapts"))
    verbose_logging: bool = setting(False, PUBLISHED_NOOP, "the run table says what is trained")
    manual_fp16: bool = setting(False, PUBLISHED_NOOP, "mixed precision is --use_amp (or --use_fp16, --amp)")

    @property
    def mixed_precision(self) -> bool:
        """--use_amp or NVIDIA's --use_fp16 / --amp."""
        return self.use_amp or self.use_fp16 or self.amp

    @property
    def peak_learning_rate(self) -> float:
        """The peak rate the schedule reaches: --learning_rate, x the ranks of a --horovod launch (NVIDIA's rule)
        unless --noscale_learning_rate_by_ranks."""
        return self.learning_rate * (self.horovod_ranks if self.scale_learning_rate_by_ranks else 1)

    @property
    def update_batch_size(self) -> int:
        """Sequences per optimizer step (train_batch_size x num_accumulation_steps)."""
        return self.train_batch_size * self.num_accumulation_steps

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the run: the head warm-up's, then --num_train_steps."""
        return (self.head_warmup_steps or 0) + self.num_train_steps

    def with_head_warmup(self, head_is_random: bool) -> "PretrainingConfig":
        """The config with --head_warmup_steps resolved: its default when not given (see its help)."""
        if self.head_warmup_steps is not None:
            return self
        steps = max(1, self.num_train_steps // 10) if head_is_random and self.num_train_steps else 0
        return dataclasses.replace(self, head_warmup_steps=steps)

    @property
    def warmup_steps(self) -> int:
        """--num_warmup_steps, else 10% of --num_train_steps."""
        return self.num_warmup_steps if self.num_warmup_steps is not None else self.num_train_steps // 10


def check(cfg: PretrainingConfig) -> None:
    """Reject settings that cannot work (InputError), before anything is read or written."""
    if not cfg.output_dir:
        raise InputError("--output_dir is required")
    if cfg.do_train and not cfg.num_train_steps:
        raise InputError("--num_train_steps is required for training")
    check_at_least(cfg, 1, ("train_batch_size", "eval_batch_size", "max_predictions_per_seq",
                            "num_accumulation_steps", "num_validate_during_training", "shuffle_buffer"))
    check_at_least(cfg, 0, ("eval_every_steps", "max_eval_steps", "keep_checkpoint_max", "head_warmup_steps"))
    if cfg.max_seq_length < 8:
        raise InputError(f"--max_seq_length={cfg.max_seq_length}: must be at least 8")
    if not 0.0 < cfg.masked_lm_prob < 1.0:
        raise InputError(f"--masked_lm_prob={cfg.masked_lm_prob}: must be between 0 and 1")
    if not (cfg.do_train or cfg.do_eval):
        raise InputError("--nodo_train --nodo_eval: nothing to do")
    if not (cfg.input_files or cfg.input_files_dir or (cfg.eval_files_dir and not cfg.do_train)):
        raise InputError("--input_files (or --input_files_dir) is required")
    if cfg.num_warmup_steps is not None and cfg.num_warmup_steps < 0:
        raise InputError(f"--num_warmup_steps={cfg.num_warmup_steps}: must not be negative")


def with_horovod(cfg: PretrainingConfig) -> PretrainingConfig:
    """The config of the published mpiexec launch (--horovod): each rank a multi-worker worker, --train_batch_size
    per rank (the config's the global batch), the ranks recorded (horovod_ranks: the peak rate scales with them);
    without --horovod `cfg` itself."""
    if not cfg.horovod:
        return cfg
    from bert_tf import distribution  # TensorFlow: only for the launch

    strategy, batch = distribution.horovod_batch(cfg.horovod, cfg.distribution, cfg.train_batch_size,
                                                 "train_batch_size")
    return dataclasses.replace(cfg, distribution=strategy, train_batch_size=batch,
                               horovod_ranks=batch // cfg.train_batch_size)


@dataclasses.dataclass
class PretrainingDataConfig:
    """The settings of `python -m bert_tf.pretraining.create_pretraining_data`: Google's create_pretraining_data.py
    flags (same names, same defaults), run once per input file, and where the records go."""

    input_file: Optional[str] = setting(None, RESULT, (
        "Raw text in Google's format (one sentence a line, a blank line between documents): files, folders, quoted "
        "globs or @LIST, comma-separated. Each file is read alone and gives its own records."))
    output_file: Optional[str] = setting(None, OUTPUT, (
        "With one input file: the TFRecord file(s) to write, comma-separated (records dealt round-robin over them, "
        "as Google's script does)."))
    output_dir: Optional[str] = setting(None, OUTPUT, (
        "Instead of --output_file: a folder that gets, for each input file NAME.txt, NAME.tfrecord (or "
        "NAME-00000-of-0000K.tfrecord ... with --output_shards=K)."))
    output_shards: int = setting(1, OUTPUT, (
        "With --output_dir: files each input file's records are dealt round-robin over."), lower_bound=1)
    vocab_file: Optional[str] = setting(None, RESULT, "The vocab.txt of the BERT model to pretrain.")
    do_lower_case: bool = setting(True, RESULT, (
        "Lower-case the text and strip accents (uncased models); --nodo_lower_case for cased ones."))
    do_whole_word_mask: bool = setting(False, RESULT, "Mask all the WordPieces of a word together.")
    max_seq_length: int = setting(128, RESULT, "Tokens per record ([CLS] and the two [SEP] included).",
                                  lower_bound=5)
    max_predictions_per_seq: int = setting(20, RESULT, "Most masked positions per record.", lower_bound=0)
    random_seed: int = setting(12345, RESULT, "Seed of the random draws (Python's random.Random, as Google's).")
    dupe_factor: int = setting(10, RESULT, "Passes over each file's documents (each with new pairs and masks).",
                               lower_bound=1)
    masked_lm_prob: float = setting(0.15, RESULT, "Share of a record's tokens to predict.")
    short_seq_prob: float = setting(0.1, RESULT, "Share of documents whose records aim at a random shorter length.")


def check_data_config(cfg: PretrainingDataConfig) -> None:
    """Reject settings of the data writer that cannot work (InputError), before anything is read or written."""
    for name in ("input_file", "vocab_file"):
        if not getattr(cfg, name):
            raise InputError(f"--{name} is required")
    if bool(cfg.output_file) == bool(cfg.output_dir):
        raise InputError("give --output_file (one input file) or --output_dir (one output per input file)")
    if cfg.output_file and cfg.output_shards != 1:
        raise InputError("--output_shards goes with --output_dir (with --output_file, list the files)")
    check_at_least(cfg, 1, ("dupe_factor", "output_shards"))
    check_at_least(cfg, 0, ("max_predictions_per_seq",))
    if cfg.max_seq_length < 5:
        raise InputError(f"--max_seq_length={cfg.max_seq_length}: must be at least 5 ([CLS], two [SEP], two tokens)")
    for name in ("masked_lm_prob", "short_seq_prob"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise InputError(f"--{name}={getattr(cfg, name)}: must be between 0 and 1")
