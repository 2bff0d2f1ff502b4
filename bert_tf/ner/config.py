"""run_ner.py's settings (`NerConfig`: one field per flag, with its role), their checks, and their normalisation.

The defaults are the published train_bert_ner.py's (DALAI-project/Train_BERT_NER): max_len 512, learning rate 2e-5,
batch 24, 10 epochs, patience 2, dropout 0.3, gamma 0.8, weight decay 0.01, 4 workers, linear schedule, data
./data/, output ./checkpoint/; quicker settings are flagfiles (flags/ner_quick.flags, flags/demo_ner.flags).

    cfg = NerConfig(data_path="data", save_model_path="out", bert_model="TurkuNLP/bert-base-finnish-cased-v1")
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from bert_tf import config
from bert_tf.config import OPERATIONAL, OUTPUT, RESULT, SharedSettings, setting
from bert_tf.errors import InputError
from bert_tf.ner import decoding, windowing

COMMAND = "run_ner.py"  # what a run's identity names, from the command line or from Python
PUBLISHED_NER_MODEL = "TurkuNLP/bert-base-finnish-cased-v1"  # the default of the published train_bert_ner.py
PUBLISHED_SCHEDULERS = ("linear", "exponential", "None")  # train_bert_ner.py --scheduler


@dataclasses.dataclass
class NerConfig(SharedSettings):
    """Every setting of a NER run (training, test, prediction); the field names are run_ner.py's flags."""

    bert_model: Optional[str] = setting(None, RESULT, (
        "Pretrained BERT: a Hugging Face Hub id (owner/name, resolved in the Hub cache, downloaded when missing and "
        "online), a Hugging Face directory (config.json, model.safetensors, vocab.txt or tokenizer.json), a TF1 "
        "checkpoint directory, a keras-hub preset (directory, name or kaggle:// handle), or a model saved by "
        f"bert-tf. Default: {PUBLISHED_NER_MODEL} (the published script's), unless the NVIDIA trio "
        "(--bert_config_file, --vocab_file, --init_checkpoint) names the checkpoint."))
    data_path: Optional[str] = setting("./data/", RESULT, (
        "Folder with train.csv, val.csv, test.csv (or only train.csv / data.csv to be split with --val_test_size). "
        "Columns: tokens, tags (Python list literals)."))
    save_model_path: Optional[str] = setting("./checkpoint/", RESULT, (
        "Output folder: model, plots, history, test report."))
    max_len: int = setting(512, RESULT, "Maximum sequence length in sub-tokens ([CLS] and [SEP] included).")
    learning_rate: float = setting(2e-5, RESULT, "Peak learning rate.")
    gamma: float = setting(0.8, RESULT, (
        "Exponential decay: the learning rate is multiplied by gamma after every epoch (with --nolinear_scheduler)."))
    epochs: int = setting(10, RESULT, "Maximum number of training epochs.")
    batch_size: int = setting(24, RESULT, (
        "Global batch size (split across replicas; under the published accelerate launch it was per process: give "
        "processes x batch here)."))
    bucket_by_length: bool = setting(True, RESULT, (
        "Batch sequences of similar length and pad them to a fixed set of lengths (--bucket_lengths); "
        "--nobucket_by_length pads every batch to --max_len."))
    bucket_lengths: List[str] = setting([], RESULT, (
        "Padded lengths for --bucket_by_length, e.g. 32,64,128 (default: 16 to 512, at most 25% apart above 32; "
        "capped at --max_len). Fewer lengths: fewer XLA compilations, more padding."))
    num_workers: int = setting(4, OPERATIONAL, (
        "Input-pipeline parallelism (tf.data threads and prefetched batches)."))
    patience: int = setting(2, RESULT, (
        "Stop after this many epochs without a new best validation F1 (0: never)."))
    freeze_layers: int = setting(0, RESULT, (
        "0: train everything; N>0: freeze the embeddings and the first N encoder layers; -1: freeze the "
        "embeddings only."))
    double_lr: bool = setting(False, RESULT, "Encoder at learning_rate/10, classification head at learning_rate.")
    classifier_dropout: float = setting(0.3, RESULT, "Dropout before the classification layer.")
    num_validate_during_training: int = setting(1, RESULT, (
        "Validations per epoch, evenly spaced, the last at its end."))
    linear_scheduler: bool = setting(True, RESULT, (
        "Linear warm-up (20% of one epoch) then linear decay to 0; --nolinear_scheduler: exponential decay by "
        "--gamma per epoch."))
    wd: Optional[float] = setting(None, RESULT, (
        "The published train_bert_ner.py's name of --weight_decay: when given, the weight decay."))
    scheduler: Optional[str] = setting(None, RESULT, (
        "The published train_bert_ner.py's schedule flag: when given, linear (--linear_scheduler), exponential "
        "(--nolinear_scheduler: decay by --gamma per epoch) or None (a constant learning rate: --nolinear_scheduler "
        "with gamma 1)."), choices=PUBLISHED_SCHEDULERS, case_sensitive=False)
    val_test_size: float = setting(0.1, RESULT, (
        "Fraction for each of val and test when data_path holds a single file."))
    max_train_examples: int = setting(0, RESULT, (
        "Train on the first N training examples only (0: all); the validation and test splits are kept whole (the "
        "demo trains on fewer examples, more passes)."))
    do_train: Optional[bool] = setting(None, RESULT, (
        "Train (the default unless --do_predict is given alone)."))
    predict_file: Optional[str] = setting(None, OUTPUT, (
        "Input for --do_predict: CSV with a tokens column, CoNLL, or raw text (a .txt file, one document a line, or "
        "a folder of .txt files, one document each: split into sentences and words here; entities also written with "
        "character offsets and as brat .ann)."))
    context: str = setting("auto", RESULT, (
        "Cross-sentence context: document fills each sentence's window with the preceding and following sentences "
        "of its document (doc_id column, -DOCSTART- lines); none: each row alone; auto: none for training, the saved "
        "model's setting for prediction (document context did not beat sentence-only on both BC5CDR and Turku NER "
        "in bench/CONTEXT_RESULTS.md, so it is not the default)."), choices=("auto", *windowing.CONTEXT_MODES))
    context_vote: Optional[str] = setting(None, RESULT, (
        "Which window decides a word seen in several: a majority over all of them (ties: the most central), or the "
        "one where it is most central (bench/CONTEXT_RESULTS.md: majority is as good or better on both BC5CDR and "
        f"Turku NER). Default: {windowing.DEFAULT_VOTE} for training, the saved model's setting for prediction."),
        choices=windowing.VOTES)
    decode: Optional[str] = setting(None, RESULT, (
        "viterbi: the most probable IOB2-valid tag sequence of each sentence; argmax: each word's most probable tag. "
        f"Default: {decoding.DEFAULT_DECODE} for training, the saved model's setting for prediction."),
        choices=decoding.DECODE_MODES)
    labels_file: Optional[str] = setting(None, RESULT, (
        "The tags, one a line, 'O' first, in the model's order (default: 'O' then the training data's tags, "
        "sorted). Tags of val/test must be in it."))
    predict_output: Optional[str] = setting(None, OUTPUT, (
        "Predictions CSV (default: <save_model_path>/predictions.csv); .conll and .jsonl files are written beside "
        "it."))

    @property
    def trains(self) -> bool:
        """Whether the run trains: --do_train, by default unless --do_predict is given alone."""
        return self.do_train if self.do_train is not None else not self.do_predict

    @property
    def vote(self) -> str:
        """The window vote when training (the flag, else the default)."""
        return self.context_vote or windowing.DEFAULT_VOTE

    @property
    def decoding(self) -> str:
        """The decoding when training (the flag, else the default)."""
        return self.decode or decoding.DEFAULT_DECODE


def check(cfg: NerConfig) -> None:
    """Reject settings that cannot work, before anything is read or written (InputError)."""
    if cfg.max_len < 8:
        raise InputError(f"--max_len={cfg.max_len}: must be at least 8")
    config.check_at_least(cfg, 1, ("epochs", "batch_size", "num_workers", "num_validate_during_training"))
    if not 0.0 < cfg.classifier_dropout < 1.0 and cfg.classifier_dropout != 0.0:
        raise InputError(f"--classifier_dropout={cfg.classifier_dropout}: must be in [0, 1)")
    if cfg.max_train_examples < 0:
        raise InputError(f"--max_train_examples={cfg.max_train_examples}: must be 0 (all) or positive")
    if cfg.learning_rate <= 0:
        raise InputError(f"--learning_rate={cfg.learning_rate}: must be positive")
    if not all(str(b).isdigit() and int(b) >= 8 for b in cfg.bucket_lengths):
        raise InputError(f"--bucket_lengths={','.join(str(b) for b in cfg.bucket_lengths)}: must be whole numbers "
                         "of at least 8")


def with_published_names(cfg: NerConfig) -> NerConfig:
    """The config with the published flags --wd and --scheduler, when given, applied to the settings they name."""
    changes = {} if cfg.wd is None else {"weight_decay": cfg.wd}
    if cfg.scheduler is not None:
        kind = cfg.scheduler.lower()
        if kind not in (name.lower() for name in PUBLISHED_SCHEDULERS):
            raise InputError(f"--scheduler={cfg.scheduler}: must be one of {', '.join(PUBLISHED_SCHEDULERS)}")
        changes["linear_scheduler"] = kind == "linear"
        if kind == "none":
            changes["gamma"] = 1.0
    return dataclasses.replace(cfg, **changes)


def normalized(cfg: NerConfig) -> NerConfig:
    """The config as the run uses it: checked; --wd and --scheduler applied; --bert_model the published model
    unless given or the NVIDIA trio names the checkpoint; with --horovod the distribution and the global batch of
    the MPI launch."""
    cfg = with_published_names(cfg)
    check(cfg)
    trio = cfg.bert_config_file or cfg.vocab_file or cfg.init_checkpoint
    bert_model = cfg.bert_model if cfg.bert_model or trio else PUBLISHED_NER_MODEL
    distribution_name, batch_size = _horovod_batch(cfg)
    return dataclasses.replace(cfg, bert_model=bert_model, distribution=distribution_name, batch_size=batch_size)


def _horovod_batch(cfg: NerConfig):
    from bert_tf import distribution  # TensorFlow: only once a run starts

    return distribution.horovod_batch(cfg.horovod, cfg.distribution, cfg.batch_size, "batch_size")
