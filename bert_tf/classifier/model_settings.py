"""What a fine-tuned classifier saves beside its weights, typed, and the model ready to use with it.

A saved model's `bert_tf_model.json` keeps these keys (`max_seq_length`, `replace_span`, `temperature`,
`fitted_temperature`, `collapsed`, `global_step`, ...) among the rest of its meta; `resolve` reads them ONCE when
the model is loaded: the saved value, else the run's setting (models saved before a key existed).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional

from bert_tf import cli, models
from bert_tf.classifier import calibration
from bert_tf.training import Trainer


@dataclasses.dataclass
class ModelSettings:
    """The settings a classifier was trained (or published) with, which its features and outputs must follow."""

    max_seq_length: int
    replace_span: Optional[str]
    temperature: Optional[float] = None  # folded into the classifier's weights (None or 1.0: raw softmax)
    fitted_temperature: Optional[float] = None  # fitted by --calibrate, folded in only with --apply_temperature
    extra_logits: int = 0  # a published TF1 head's logits beyond the labels
    collapsed: bool = False
    global_step: int = 0
    pooling: str = "pooler"
    published_tf1: bool = False
    model_path: Optional[str] = None  # where it was loaded from (None: trained by this run)

    @property
    def folded_temperature(self) -> float:
        """The temperature folded into the weights (1.0: none)."""
        return float(self.temperature or 1.0)


def resolve(meta: Mapping[str, Any], max_seq_length: int, replace_span: Optional[str], source: str,
            pooling: str = "pooler", lengths_given: bool = True) -> ModelSettings:
    """A loaded model's settings: the saved value, else the run's. A run setting (`max_seq_length`,
    `replace_span`) that differs from the saved one is not applied, and the run says so once (`lengths_given`:
    whether the run's values were chosen, not defaults)."""
    saved_length = int(meta.get("max_seq_length", max_seq_length))
    saved_span = meta.get("replace_span", replace_span)
    if lengths_given:
        for name, wanted, saved in (("max_seq_length", max_seq_length, saved_length),
                                    ("replace_span", replace_span, saved_span)):
            if wanted != saved:
                cli.notice(f"--{name}={wanted} is not applied: the model was trained with {name} {saved}, "
                           "which its features follow", source)
    return ModelSettings(
        max_seq_length=saved_length, replace_span=saved_span,
        temperature=float(meta["temperature"]) if meta.get("temperature") is not None else None,
        fitted_temperature=(float(meta["fitted_temperature"]) if meta.get("fitted_temperature") is not None
                            else None),
        extra_logits=int(meta.get("extra_logits", 0)), collapsed=bool(meta.get("collapsed", False)),
        global_step=int(meta.get("global_step", 0) or 0), pooling=pooling,
        published_tf1=bool(meta.get("published_tf1", False)),
        model_path=meta.get("model_path") or os.path.abspath(source))


@dataclasses.dataclass
class Classifier:
    """A classifier ready to evaluate and predict: the model, its trainer (prediction steps) and settings."""

    task: models.TaskModel
    trainer: Trainer
    settings: ModelSettings

    @property
    def labels(self):
        """The labels, in the order of the model's logits."""
        return self.task.labels

    def apply_fitted_temperature(self, source: str) -> None:
        """Fold the temperature --calibrate fitted into the classifier (see calibration.apply_fitted_temperature)."""
        calibration.apply_fitted_temperature(self.task, source)
        self.settings.temperature = self.task.meta.get("temperature")
