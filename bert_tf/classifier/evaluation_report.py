"""The classifier's evaluation on dev.tsv and its reports: eval_results.txt (the published key = value form),
eval_report.txt, eval_results.json, confusion_matrix.png, reliability.png."""

from __future__ import annotations

import os
from typing import Dict

from bert_tf import reports
from bert_tf.classifier import calibration, evaluation, inputs
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.classifier.model_settings import Classifier
from bert_tf.io_utils import write_json_atomic, write_text_atomic
from bert_tf.classifier.metrics import format_classification_report, published_eval_results
from bert_tf.metrics import softmax

EVAL_REPORT = "eval_report.txt"  # the formatted report; eval_results.txt is the published key = value form
EVAL_OUTPUTS = ("eval_results.json", "eval_results.txt", EVAL_REPORT)


def evaluation_notes(metrics: Dict) -> str:
    """Text lines on the majority baseline, collapse and calibration, for eval_report.txt."""
    baseline, fit = metrics["majority_baseline"], metrics["calibration"]
    lines = [f"majority baseline (always {baseline['label']!r}): accuracy {baseline['accuracy']:.4f}, "
             f"macro F1 {baseline['macro_f1']:.4f}",
             f"calibration (temperature {fit['temperature']:.4f}, ECE over {fit['ece_bins']} bins): "
             f"ECE {fit['before']['ece']:.4f} before, {fit['after']['ece']:.4f} after; "
             f"NLL {fit['before']['nll']:.4f} before, {fit['after']['nll']:.4f} after"]
    if metrics["collapsed"]:
        lines.append(f"COLLAPSED: the model does not beat the majority baseline; {calibration.COLLAPSE_ADVICE}")
    return "\n" + "\n".join(lines) + "\n"


def evaluate_on_dev(cfg: ClassifierConfig, model: Classifier, cache_root: str, chief: bool) -> Dict:
    """Evaluate on dev.tsv, write the evaluation outputs into --output_dir (the chief), print the report; the
    metrics."""
    settings = model.settings
    dev_path = inputs.split_path(cfg.data_dir, "dev")
    info = inputs.build_features(dev_path, model.labels, "the model's labels", model.task.tokenizer,
                                 settings.max_seq_length, settings.replace_span, cache_root, chief=chief,
                                 workers=cfg.featurize_workers)
    temperature = settings.folded_temperature
    logits, gold = evaluation.evaluation_logits(model.trainer, info, cfg.eval_batch_size)
    metrics = evaluation.metrics_from_logits(logits, gold, model.labels, temperature, settings.fitted_temperature)
    metrics["collapsed"] = settings.collapsed or not metrics["beats_majority_baseline"]
    report = format_classification_report(metrics, metrics["loss"], title=f"Evaluation on {dev_path}")
    report += evaluation_notes(metrics)
    if chief:
        out = cfg.output_dir
        write_json_atomic(os.path.join(out, "eval_results.json"), metrics)
        write_text_atomic(os.path.join(out, EVAL_REPORT), report)
        reports.write_published_eval_results(os.path.join(out, "eval_results.txt"),
                                             published_eval_results(metrics, settings.global_step))
        reports.plot_confusion_matrix(metrics["confusion_matrix"], model.labels,
                                      os.path.join(out, "confusion_matrix.png"), title="Confusion matrix (dev)")
        after = metrics["calibration"]["temperature"]
        calibration.plot_reliability(
            softmax(logits * temperature), gold, os.path.join(out, "reliability.png"),
            title=f"Reliability on dev (temperature {after:.3g}{'' if temperature != 1.0 else ', not applied'})",
            calibrated=softmax(logits * temperature, after) if after != 1.0 else None)
    print(report)
    return metrics
