"""The classifier job's Python API: train, evaluate and predict as run_classifier.py does, from a ClassifierConfig.

    from bert_tf.classifier.config import ClassifierConfig
    from bert_tf.classifier import run

    cfg = ClassifierConfig(bert_model="/models/biobert", data_dir="data", output_dir="out", num_train_epochs=2)
    trained = run.train(cfg)                 # <output_dir>/model, reports
    metrics = run.evaluate(cfg).eval_metrics  # eval_results.json and the rest, from <output_dir>/model
    files = run.predict(cfg).prediction_files

`run(cfg)` is the command line: --do_train, --do_eval and --do_predict, in that order. Every function is one run
of run_classifier.py (bert_tf.lifecycle): its claims on the output folder are finished when it ends and
abandoned on bad input (InputError), as on the command line.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bert_tf import cli, config, distribution, html_report, lifecycle, ownership, resume
from bert_tf.classifier import calibration, corpus, distill, fitting, inputs, model_loading, prediction
from bert_tf.classifier.config import ClassifierConfig, check, with_horovod
from bert_tf.classifier.evaluation_report import EVAL_OUTPUTS, evaluate_on_dev
from bert_tf.classifier.model_settings import Classifier
from bert_tf.errors import InputError

COMMAND = "run_classifier.py"


@dataclasses.dataclass
class ClassifierResult:
    """What a run did: its output folder, the model it trained or loaded, the evaluation metrics (--do_eval), the
    prediction files of this process's shards (--do_predict) and whether the model collapsed."""

    output_dir: str
    model: Classifier
    eval_metrics: Optional[Dict[str, Any]] = None
    prediction_files: List[str] = dataclasses.field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        """True when no validation beat the majority baseline (see calibration.CollapseGuard)."""
        return self.model.settings.collapsed


def train(cfg: ClassifierConfig) -> ClassifierResult:
    """Fine-tune on <data_dir>/train.tsv (validating on dev.tsv after every epoch) and save <output_dir>/model."""
    return run(dataclasses.replace(cfg, do_train=True, do_eval=False, do_predict=False))


def evaluate(cfg: ClassifierConfig) -> ClassifierResult:
    """Evaluate the trained model (<output_dir>/model, --bert_model or a published one) on <data_dir>/dev.tsv."""
    return run(dataclasses.replace(cfg, do_train=False, do_eval=True, do_predict=False))


def predict(cfg: ClassifierConfig) -> ClassifierResult:
    """Predict --predict_file (default <data_dir>/test.tsv) with the trained model."""
    return run(dataclasses.replace(cfg, do_train=False, do_eval=False, do_predict=True))


def run(cfg: ClassifierConfig) -> ClassifierResult:
    """What run_classifier.py does: check the settings, then --do_train, --do_eval and --do_predict, in that
    order."""
    with lifecycle.running(COMMAND):
        check(cfg)
        config.note_published_noops(cfg)
        cfg = with_horovod(cfg)
        if cfg.use_fp16 and not cfg.use_amp:
            cli.notice("--use_fp16 as published: the model stays float32 (the published code's model did); "
                       "--use_amp computes in mixed precision")
        labels, labels_source = training_labels(cfg) if cfg.do_train else (None, None)
        fingerprint = training_fingerprint(cfg) if cfg.do_train else None
        shards, is_corpus = prediction.prediction_plan(cfg) if cfg.do_predict else ([], False)
        check_outputs(cfg, shards, is_corpus)
        checkpointer = (prepare_training_dir(cfg, fingerprint, run_identity(cfg, shards, is_corpus))
                        if cfg.do_train else None)
        context = distribution.setup_run(cfg.seed, cfg.use_amp, cfg.distribution, cfg.deterministic, cfg.amp_dtype)
        model = model_for_run(cfg, context, labels, labels_source, checkpointer)
        result = ClassifierResult(cfg.output_dir, model)
        if cfg.do_eval:
            lifecycle.enter_phase("evaluation")
            result.eval_metrics = evaluate_on_dev(cfg, model, fitting.cache_root(cfg), context.chief)
        if cfg.do_predict:
            result.prediction_files = prediction.predict_shards(cfg, model, context.chief, shards, is_corpus,
                                                                fitting.cache_root(cfg))
        finish(cfg, model, context, checkpointer)
        return result


def training_labels(cfg: ClassifierConfig) -> Tuple[List[str], str]:
    """The labels to train with and where they come from: the teacher's (--distill_from), --labels_dir,
    --labels_file, else train.tsv's."""
    if cfg.distill_from:
        return distill.teacher_labels(cfg)
    train_path = inputs.split_path(cfg.data_dir, "train")
    return model_loading.given_labels(cfg) or inputs.resolve_labels(None, train_path)


def training_fingerprint(cfg: ClassifierConfig) -> Dict[str, Any]:
    """The settings and data files a resumed training run must share with the run it resumes."""
    if cfg.distill_from:
        return config.fingerprint(cfg, distill.input_files(cfg))
    return config.fingerprint(cfg, [inputs.split_path(cfg.data_dir, split) for split in ("train", "dev")])


def run_identity(cfg: ClassifierConfig, shards: Sequence[corpus.Shard], is_corpus: bool) -> Dict[str, Any]:
    """This command's identity for its claim on --output_dir (bert_tf.ownership): its settings and input files."""
    files = ([inputs.split_path(cfg.data_dir, "dev")] if cfg.do_eval else []) + [
        shard.input for shard in shards if not is_corpus]
    return config.identity(cfg, COMMAND, files)


def check_outputs(cfg: ClassifierConfig, shards: Sequence[corpus.Shard], is_corpus: bool) -> None:
    """Claim --output_dir for evaluation or prediction: refuse to overwrite earlier results unless
    --overwrite_output_dir is given (the same command continuing its own unfinished run is fine, and so is a
    corpus's, whose finished shards are skipped). With --do_train, prepare_training_dir checks and claims."""
    if cfg.do_train:
        return
    planned = [os.path.join(cfg.output_dir, name) for name in EVAL_OUTPUTS] if cfg.do_eval else []
    if not is_corpus:
        planned += [p for shard in shards for p in shard.outputs.values()]

    def check_planned() -> None:
        for path in planned:
            if os.path.exists(path) and not cfg.overwrite_output_dir:
                raise InputError("exists; use --overwrite_output_dir to replace it", path)

    if distribution.chief_by_environment(cfg.distribution):
        ownership.claim_output_dir(cfg.output_dir, run_identity(cfg, shards, is_corpus), cfg.overwrite_output_dir,
                                   check_planned)


def prepare_training_dir(cfg: ClassifierConfig, fingerprint: Dict[str, Any],
                         identity: Dict[str, Any]) -> resume.TrainingCheckpointer:
    """Check and claim --output_dir for training (empty, --overwrite_output_dir, or a run of the same `fingerprint`
    to resume, or this command's own unfinished run: `identity`); the run's checkpointer."""
    return resume.prepare_training_dir(cfg.output_dir, cfg.overwrite_output_dir, cfg.resume, "output_dir",
                                       fingerprint, distribution.chief_by_environment(cfg.distribution),
                                       {**identity, **fingerprint})


def model_for_run(cfg: ClassifierConfig, context: distribution.RunContext, labels: Optional[Sequence[str]],
                  labels_source: Optional[str], checkpointer: Optional[resume.TrainingCheckpointer]) -> Classifier:
    """Write run_config.json, then train (--do_train) or load the model to evaluate and predict with. On bad input
    the run's claim on the output folder removes it again when this run created it (bert_tf.lifecycle)."""
    os.makedirs(cfg.output_dir, exist_ok=True)
    if context.chief:
        cli.write_run_config(cfg.output_dir, config.values(cfg))
    if cfg.do_train and cfg.distill_from:
        return distill.train_student(cfg, context, labels_source, checkpointer)
    if cfg.do_train:
        return fitting.train_model(cfg, context, labels, labels_source, checkpointer)
    model = model_loading.load_trained(cfg, context)
    print(f"using {distribution.describe_devices(context.strategy)}")
    return model


def finish(cfg: ClassifierConfig, model: Classifier, context: distribution.RunContext,
           checkpointer: Optional[resume.TrainingCheckpointer]) -> None:
    """Remove the resume checkpoints of a finished training run, write report.html, say where the outputs are
    and whether the model collapsed."""
    if checkpointer is not None:
        resume.finish_training(checkpointer, cfg.keep_checkpoints)
    if context.chief:
        html_report.write_run_report(cfg.output_dir)
    print(f"outputs in {cfg.output_dir}")
    if model.settings.collapsed:
        print("WARNING: this run's model collapsed: no validation beat the majority baseline; "
              f"{calibration.COLLAPSE_ADVICE}")
