"""NER evaluation figures (conlleval entity scoring, with and without gold-O words) and their text report."""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from seqeval.metrics.sequence_labeling import get_entities

from bert_tf.metrics import PRF_KEYS, format_number, heading, prf, safe_ratio, score_table
from bert_tf.ner.data import OUTSIDE_TAG


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    """Raise ValueError unless gold and pred have the same sentences of the same lengths."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    for index, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(
                f"sentence {index}: gold has {len(gold_tags)} tags but pred has {len(pred_tags)}"
            )


def _typed_entities(sentences: list[list[str]]) -> set[tuple[str, int, int]]:
    """The conlleval chunks (type, first, last) of the sentences, positions in the joined sequence."""
    if not sentences:
        return set()
    # A list of lists makes seqeval put an "O" after every sentence, so chunks never cross sentences.
    return set(get_entities(sentences))


def _entity_scores(gold: list[list[str]], pred: list[list[str]]) -> tuple[dict, dict]:
    """Micro precision/recall/F1 over all entities, and the same figures plus support per type."""
    gold_entities = _typed_entities(gold)
    pred_entities = _typed_entities(pred)
    correct = gold_entities & pred_entities
    gold_by_type = Counter(entity[0] for entity in gold_entities)
    pred_by_type = Counter(entity[0] for entity in pred_entities)
    correct_by_type = Counter(entity[0] for entity in correct)
    per_class = {}
    for entity_type in sorted(set(gold_by_type) | set(pred_by_type)):
        scores = prf(correct_by_type[entity_type], pred_by_type[entity_type], gold_by_type[entity_type])
        per_class[entity_type] = {**scores, "support": int(gold_by_type[entity_type])}
    overall = prf(len(correct), len(pred_entities), len(gold_entities))
    return overall, per_class


def _token_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Fraction of positions whose predicted tag equals the gold tag."""
    total = sum(len(sentence) for sentence in gold)
    same = sum(g == p for gold_tags, pred_tags in zip(gold, pred) for g, p in zip(gold_tags, pred_tags))
    return safe_ratio(same, total)


def _drop_gold_outside(gold: list[list[str]], pred: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Both tag lists without the positions whose gold tag is "O"; sentences left empty are dropped."""
    kept_gold, kept_pred = [], []
    for gold_tags, pred_tags in zip(gold, pred):
        keep = [index for index, tag in enumerate(gold_tags) if tag != OUTSIDE_TAG]
        if keep:
            kept_gold.append([gold_tags[index] for index in keep])
            kept_pred.append([pred_tags[index] for index in keep])
    return kept_gold, kept_pred


def _headline_figures(gold: list[list[str]], pred: list[list[str]]) -> tuple[dict, dict]:
    """Token accuracy with entity-level micro precision/recall/F1, and the per-type table."""
    overall, per_class = _entity_scores(gold, pred)
    return {"accuracy": _token_accuracy(gold, pred), **overall}, per_class


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Word-level NER evaluation in conlleval semantics, overall, per entity type, and without gold-O words.

    Returns accuracy (token level), entity-level micro precision/recall/f1, "without_o" (the same four
    figures after removing every position whose gold tag is "O"), "per_class" (per type, sorted, with
    gold support; types seen only in predictions have support 0), "num_words" and "num_sentences".
    Raises ValueError when the two sides differ in sentence count or in a sentence's length.
    """
    _check_aligned(gold, pred)
    gold_lists = [list(sentence) for sentence in gold]
    pred_lists = [list(sentence) for sentence in pred]
    headline, per_class = _headline_figures(gold_lists, pred_lists)
    without_o, _ = _headline_figures(*_drop_gold_outside(gold_lists, pred_lists))
    return {
        **headline,
        "without_o": without_o,
        "per_class": per_class,
        "num_words": int(sum(len(sentence) for sentence in gold_lists)),
        "num_sentences": len(gold_lists),
    }


def format_ner_report(metrics: dict, loss: Optional[float] = None, title: str = "") -> str:
    """A fixed-width text report of `ner_metrics` output: headline figures with and without O, then per type."""
    without_o = metrics.get("without_o", {})
    lines = heading(title)
    lines.append(f"{'':<10}  {'all words':>10}  {'without O':>10}")
    lines.append(f"{'loss':<10}  {format_number(loss):>10}  {'':>10}")
    for key in ("accuracy", *PRF_KEYS):
        lines.append(f"{key:<10}  {format_number(metrics.get(key)):>10}  {format_number(without_o.get(key)):>10}")
    lines.append(f"words: {metrics.get('num_words', 0)}  sentences: {metrics.get('num_sentences', 0)}")
    lines.append("")
    lines.extend(score_table(metrics.get("per_class", {}), "type"))
    return "\n".join(lines) + "\n"
