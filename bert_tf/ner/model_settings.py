"""What a fine-tuned NER model saves beside its weights, typed, and resolved once at load: the saved value, else
the run's setting."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping

from bert_tf.ner import decoding, windowing
from bert_tf.ner.config import NerConfig


@dataclasses.dataclass(frozen=True)
class NerModelSettings:
    """The settings prediction takes from a saved NER model (keys of its meta JSON, kept as they were)."""

    max_len: int
    context: str = "none"
    context_vote: str = windowing.DEFAULT_VOTE
    decode: str = decoding.DEFAULT_DECODE

    def meta(self) -> Dict[str, Any]:
        """The keys saved beside the weights."""
        return dataclasses.asdict(self)

    @classmethod
    def of_training(cls, cfg: NerConfig, context: str) -> "NerModelSettings":
        """What a training run of `cfg` saves (`context`: the context that ran)."""
        return cls(cfg.max_len, context, cfg.vote, cfg.decoding)

    @classmethod
    def for_prediction(cls, meta: Mapping[str, Any], cfg: NerConfig, positions: int) -> "NerModelSettings":
        """The settings to predict with: --context_vote and --decode when given, else the saved model's; the saved
        max_len and context (models saved without them, such as a Hugging Face folder written by another tool: the
        flag's max_len, at most the model's `positions`, and no context)."""
        return cls(int(meta.get("max_len", min(cfg.max_len, positions))), str(meta.get("context", "none")),
                   cfg.context_vote or str(meta.get("context_vote", windowing.DEFAULT_VOTE)),
                   cfg.decode or str(meta.get("decode", decoding.DEFAULT_DECODE)))
