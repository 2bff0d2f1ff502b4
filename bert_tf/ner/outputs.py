"""The prediction files of a NER run: CSV (tokens, tags), CoNLL (word TAB tag), JSONL (entities with
probabilities) and, for raw text, JSONL with character offsets and brat .txt + .ann pairs."""

from __future__ import annotations

import json
from typing import List, Optional, Sequence

from bert_tf.io_utils import write_text_atomic
from bert_tf.ner import data as ner_data, decoding, raw_text
from bert_tf.ner.entities import entities_of
from bert_tf.ner.prediction import WordPredictions


def write_predictions(examples: Sequence[ner_data.NerExample], tags: List[List[str]], predictions: WordPredictions,
                      paths: List[str], documents: Optional[list] = None) -> None:
    """Write predicted tags to `paths` (CSV, CoNLL, JSONL and, with raw-text `documents`, the brat folder)."""
    predicted = [ner_data.NerExample(tuple(e.tokens), tuple(t), e.line, doc_id=e.doc_id)
                 for e, t in zip(examples, tags)]
    ner_data.write_ner_csv(paths[0], predicted)
    conll = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(e.tokens, tg)) for e, tg in zip(examples, tags))
    write_text_atomic(paths[1], conll + "\n")
    chosen = [decoding.chosen_log_probs(lp, ids) for lp, ids in zip(predictions.log_probs, predictions.label_ids)]
    lines = [json.dumps({"document": i, "line": e.line, **({"doc_id": e.doc_id} if e.doc_id is not None else {}),
                         "entities": entities_of(e.tokens, tg, c, lp)}, ensure_ascii=False)
             for i, (e, tg, c, lp) in enumerate(zip(examples, tags, predictions.confidence, chosen))]
    write_text_atomic(paths[2], "\n".join(lines) + ("\n" if lines else ""))
    if documents:  # raw text: JSONL with character offsets, and brat .txt + .ann pairs
        raw_text.write_predictions(documents, tags, predictions.confidence, paths[2], paths[3], chosen)
