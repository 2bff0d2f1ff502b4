"""The classifier's prediction files, in one place: our headed TSV and the published 8-column layout.

Ours (``output_with_probabilities*.tsv``): a header ``doc_id annotation_id label left_context
mention right_context predicted_label <label>...`` then one row per example, probabilities as
``str(numpy.float32(p))`` (full float32 precision, the published files' text). The published pipeline's (``output_with_probabilities_dict.tsv``): no header, the six
input columns, the predicted label, then a Python dict literal ``{'che': p, 'dis': p, ...}`` whose
values are written as ``str(numpy.float32(p))``.
"""

from __future__ import annotations

import json
from typing import Dict, Sequence

import numpy as np

INPUT_COLUMNS = ("doc_id", "annotation_id", "label", "left_context", "mention", "right_context")
PREDICTED_COLUMN = "predicted_label"
FIXED_COLUMNS = INPUT_COLUMNS + (PREDICTED_COLUMN,)
PUBLISHED_WIDTH = len(FIXED_COLUMNS) + 1
RESULTS_NAME = "test_results"
PROBABILITIES_NAME = "output_with_probabilities"
PUBLISHED_PROBABILITIES_NAME = "output_with_probabilities_dict"
PUBLISHED_LABELS_NAME = "test_output_labels"


def header_line(labels: Sequence[str]) -> str:
    """The header line of our prediction file (with its newline)."""
    return "\t".join([*FIXED_COLUMNS, *labels]) + "\n"


def format_published_probability(probability: float) -> str:
    """A probability as the published TF1 code wrote it (``str`` of a float32)."""
    return str(np.float32(probability))


def format_row(fields: Sequence[str], predicted: str, probabilities: Sequence[float]) -> str:
    """One row of our prediction file: input fields, predicted label, one probability per label, each as the
    published files wrote it (so that a blocklist threshold sees the same number from either file)."""
    return "\t".join([*fields, predicted, *map(format_published_probability, probabilities)]) + "\n"


def format_published_dict(labels: Sequence[str], probabilities: Sequence[float]) -> str:
    """The published probability column: a Python dict literal, labels in the given order."""
    items = ", ".join(f"'{label}': {format_published_probability(p)}" for label, p in zip(labels, probabilities))
    return "{" + items + "}"


def format_published_row(fields: Sequence[str], predicted: str, labels: Sequence[str],
                         probabilities: Sequence[float]) -> str:
    """One row of the published 8-column prediction file (with its newline)."""
    return "\t".join([*fields, predicted, format_published_dict(labels, probabilities)]) + "\n"


def _dict_text(text: str) -> str:
    """A probability cell without surrounding space and without the backslash before `{` that the published
    `awk` line leaves under mawk (Debian's and Ubuntu's awk; gawk writes the brace alone)."""
    stripped = text.strip()
    return stripped[1:] if stripped.startswith("\\{") else stripped


def parse_published_dict(text: str) -> Dict[str, float]:
    """The label -> probability mapping of a published probability cell; ValueError if it is not one."""
    stripped = _dict_text(text)
    if not (stripped.startswith("{") and stripped.endswith("}")):
        raise ValueError(f"not a probability dict: {text[:60]!r}")
    try:
        parsed = json.loads(stripped.replace("'", '"'))
    except json.JSONDecodeError:
        raise ValueError(f"not a probability dict: {text[:60]!r}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise ValueError(f"not a probability dict: {text[:60]!r}")
    values = {}
    for label, value in parsed.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"probability of {label!r} is not a number: {value!r}")
        values[str(label)] = float(value)
    return values


def is_published_row(cells: Sequence[str]) -> bool:
    """Whether split cells look like a published 8-column row (dict in the last cell)."""
    return len(cells) == PUBLISHED_WIDTH and _dict_text(cells[-1]).startswith("{")


LABELS_OUTPUT = "labels"  # roles of a shard's output files (keys of `output_names`)
RESULTS_OUTPUT = "results"
PROBABILITIES_OUTPUT = "probabilities"
PUBLISHED_OUTPUT = "published"


PUBLISHED_SUBDIR = "published"


def output_names(shard_id: str = "", seed_compatible: bool = False) -> Dict[str, str]:
    """The file names (relative to the prediction folder) a prediction writes, by role.

    One input: ``test_results.tsv`` (Google's/NVIDIA's layout: no header, a row of probabilities per example),
    ``test_output_labels.txt`` (the predicted label a line) and our ``output_with_probabilities.tsv``; with
    `seed_compatible` also the published ``output_with_probabilities_dict.tsv``. A corpus shard: the same with
    ``_<shard_id>`` before the extension, and with `seed_compatible` the labels and the 8-column file in
    ``published/`` under the names the published pipeline gives them there (``output_with_probabilities_<id>.tsv``,
    so that the pattern ``output_with_probabilities_*`` of each folder finds one file per shard, never both
    formats)."""
    if not shard_id:
        names = {RESULTS_OUTPUT: f"{RESULTS_NAME}.tsv", PROBABILITIES_OUTPUT: f"{PROBABILITIES_NAME}.tsv",
                 LABELS_OUTPUT: f"{PUBLISHED_LABELS_NAME}.txt"}
        if seed_compatible:
            names[PUBLISHED_OUTPUT] = f"{PUBLISHED_PROBABILITIES_NAME}.tsv"
        return names
    names = {RESULTS_OUTPUT: f"{RESULTS_NAME}_{shard_id}.tsv",
             PROBABILITIES_OUTPUT: f"{PROBABILITIES_NAME}_{shard_id}.tsv"}
    if seed_compatible:
        names[LABELS_OUTPUT] = f"{PUBLISHED_SUBDIR}/{PUBLISHED_LABELS_NAME}_{shard_id}.txt"
        names[PUBLISHED_OUTPUT] = f"{PUBLISHED_SUBDIR}/{PROBABILITIES_NAME}_{shard_id}.tsv"
    return names


def format_results_row(probabilities: Sequence[float]) -> str:
    """One row of test_results.tsv as Google's and NVIDIA's run_classifier.py write it (no header; every
    probability the model computed, as float32 text)."""
    return "\t".join(map(format_published_probability, probabilities)) + "\n"
