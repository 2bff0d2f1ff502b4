"""The NER job's Python API (what run_ner.py runs): train, test and predict, as functions of a `NerConfig`.

    from bert_tf.ner.config import NerConfig
    from bert_tf.ner import run

    result = run.train(NerConfig(data_path="data", save_model_path="out", epochs=3))  # the published model
    result.metrics["f1"]
    tags = run.predict_sentences("out", [["Sauli", "Niinistö", "asuu", "Helsingissä", "."]])
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, List, Optional, Sequence

from bert_tf import checkpoints, config, distribution, lifecycle, models, ownership
from bert_tf.errors import InputError
from bert_tf.ner import data as ner_data, raw_text
from bert_tf.ner.batching import bucket_lengths
from bert_tf.ner.config import COMMAND, NerConfig, normalized
from bert_tf.ner.model_settings import NerModelSettings
from bert_tf.ner.outputs import write_predictions
from bert_tf.ner.prediction import WordPredictions, decode, predict_words
from bert_tf.ner.training_run import choose_context, eval_set_of, train_and_test


@dataclasses.dataclass
class TrainResult:
    """What a training run produced: its test metrics and where its outputs are."""

    metrics: Dict[str, object]
    output_dir: str
    model_dir: str


@dataclasses.dataclass
class PredictResult:
    """What a prediction run wrote, and the predicted tags of every example."""

    outputs: List[str]
    tags: List[List[str]]


def train(cfg: NerConfig) -> TrainResult:
    """Fine-tune on cfg.data_path, keep the best model by validation F1 in <save_model_path>/model, test it and write
    the reports."""
    with lifecycle.running(COMMAND):
        cfg = _output_checked(normalized(cfg))
        metrics = train_and_test(cfg)
        return TrainResult(metrics, cfg.save_model_path, os.path.join(cfg.save_model_path, "model"))


def predict(cfg: NerConfig) -> PredictResult:
    """Tag cfg.predict_file with the model saved in cfg.save_model_path; write CSV, CoNLL and JSONL predictions (and
    brat files for raw text)."""
    with lifecycle.running(COMMAND):
        cfg = _output_checked(normalized(cfg))
        return _predict(cfg)


def run(cfg: NerConfig) -> Optional[PredictResult]:
    """What run_ner.py does: train (default), predict (--do_predict), or both (--do_train --do_predict)."""
    with lifecycle.running(COMMAND):
        cfg = _output_checked(normalized(cfg))
        if cfg.trains:
            train_and_test(cfg)
        return _predict(cfg) if cfg.do_predict else None


def predict_sentences(model_dir: str, sentences: Sequence[Sequence[str]], batch_size: int = 16) -> List[List[str]]:
    """The predicted tags of each sentence (a list of words) by the model saved in `model_dir` (a training run's
    output folder or its model/ folder), each sentence alone, with the model's saved vote and decoding."""
    import tensorflow as tf

    from bert_tf.training import Trainer

    with lifecycle.running(COMMAND):
        cfg = NerConfig(batch_size=batch_size, verbose=False)
        task = checkpoints.load_saved_model(model_dir)
        examples = [ner_data.NerExample(tuple(words), None, i + 1) for i, words in enumerate(sentences)]
        settings = NerModelSettings.for_prediction(task.meta, cfg, task.backbone.max_sequence_length)
        trainer = Trainer(task.model, None, tf.distribute.get_strategy(), verbose=False)
        predictions = _tag(trainer, task, examples, settings, "none", cfg)  # no document ids: each alone
        return [[task.labels[i] for i in ids] for ids in predictions.label_ids]


def _output_checked(cfg: NerConfig) -> NerConfig:
    if not cfg.save_model_path:
        raise InputError("--save_model_path is required")
    return cfg


def _tag(trainer, task: models.TaskModel, examples: Sequence[ner_data.NerExample], settings: NerModelSettings,
         context: str, cfg: NerConfig) -> WordPredictions:
    """The decoded word predictions of the examples."""
    eval_set = eval_set_of(examples, None, task.tokenizer, settings.max_len, context)
    buckets = bucket_lengths(settings.max_len, cfg.bucket_by_length, cfg.bucket_lengths)
    return decode(predict_words(trainer, eval_set, cfg.batch_size, buckets, task.tokenizer.pad_id, cfg.num_workers,
                                settings.context_vote), task.labels, settings.decode)


def _predict(cfg: NerConfig) -> PredictResult:
    """Tag --predict_file (see `predict`)."""
    from bert_tf.training import Trainer

    if not cfg.predict_file:
        raise InputError("--do_predict needs --predict_file")
    documents = raw_text.read_documents(cfg.predict_file) if raw_text.is_raw_text(cfg.predict_file) else None
    examples = raw_text.as_examples(documents) if documents else ner_data.read_words_file(cfg.predict_file)
    output = cfg.predict_output or os.path.join(cfg.save_model_path, "predictions.csv")
    stem = os.path.splitext(output)[0]
    outputs = [output, stem + ".conll", stem + ".jsonl"] + ([stem + "_brat"] if documents else [])

    def check() -> None:
        existing = [p for p in outputs if os.path.exists(p)]
        if existing and not cfg.overwrite_output_dir:
            raise InputError("prediction output exists; use --overwrite_output_dir to replace it", existing[0])

    ownership.claim_output_dir(os.path.dirname(os.path.abspath(output)),
                               config.identity(cfg, COMMAND, [cfg.predict_file]), cfg.overwrite_output_dir, check)
    run = distribution.setup_run(cfg.seed, cfg.use_amp, cfg.distribution, amp_dtype=cfg.amp_dtype)
    with run.strategy.scope():
        task = checkpoints.load_saved_model(cfg.save_model_path)
    settings = NerModelSettings.for_prediction(task.meta, cfg, task.backbone.max_sequence_length)
    context, context_text = choose_context(cfg.context, ner_data.has_documents(examples), settings.context)
    trainer = Trainer(task.model, None, run.strategy, use_xla=cfg.use_xla, verbose=cfg.verbose)
    print(f"predicting with {distribution.describe_devices(run.strategy)}; "
          f"batch {run.describe_batch(cfg.batch_size)}; precision {run.precision}; "
          f"context {context_text}, {settings.context_vote} window, decoding {settings.decode}")
    started = time.time()
    predictions = _tag(trainer, task, examples, settings, context, cfg)
    seconds = time.time() - started
    tags = [[task.labels[i] for i in doc] for doc in predictions.label_ids]
    write_predictions(examples, tags, predictions, outputs, documents)
    words = sum(len(e.tokens) for e in examples)
    print(f"tagged {len(examples)} documents, {words} words in {seconds:.1f} s ({words / max(seconds, 1e-9):.0f} "
          f"words/s); wrote {', '.join(outputs)}")
    return PredictResult(outputs, tags)
