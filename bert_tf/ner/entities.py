"""Entities of a tagged example (type, word span, text, confidence, probability) for the JSON outputs."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

from bert_tf.ner import decoding

def entities_of(words: Sequence[str], tags: Sequence[str], confidence: Sequence[float],
                log_probs: Optional[np.ndarray] = None) -> List[Dict]:
    """Entities (type, word span, text, mean confidence and, given the chosen tags' log-probabilities,
    probability) in a tagged example, conlleval chunking."""
    out = []
    for entity_type, start, end in get_entities(list(tags)):
        entity = {
            "type": entity_type,
            "start_word": int(start),
            "end_word": int(end) + 1,
            "text": " ".join(words[start:end + 1]),
            "confidence": round(float(np.mean(confidence[start:end + 1])), 6),
        }
        if log_probs is not None:
            entity["probability"] = round(decoding.entity_probability(log_probs, start, end + 1), 6)
        out.append(entity)
    return out
