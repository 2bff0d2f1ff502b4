"""What a batch is, for every task: the model's input features, the label key, and the label that means "no label"."""

from __future__ import annotations

TOKEN_IDS = "token_ids"
PADDING_MASK = "padding_mask"
SEGMENT_IDS = "segment_ids"
FEATURE_KEYS = (TOKEN_IDS, PADDING_MASK, SEGMENT_IDS)  # the inputs of a BERT backbone, int32 [batch, length]
LABELS = "labels"  # int32 [batch] (classifier) or [batch, length] (NER)
IGNORE_LABEL = -1  # a position (or example) without a label: no loss, not counted
