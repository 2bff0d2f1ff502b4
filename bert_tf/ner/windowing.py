"""Where NER windows go: documents made of consecutive examples, and windows planned over their words.

Words are numbered globally: the words of every example, in order, one after the other. A window
is (start, end, target_start, target_end): the model sees words [start, end) and the loss (and,
during training, the metrics) counts words [target_start, target_end). Every word is a target of
exactly one window, the one where it has the most context on both sides.

- An example that fits in the budget gets one window; with document context the window is filled
  with the preceding and following words of its document, about as many sub-tokens on each side
  (Luoma & Pyysalo 2020), and its targets are the example's own words.
- A longer example gets overlapping windows over its own words (about half a window apart) and
  each word is the target of the window where it is most central.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

CONTEXT_MODES = ("none", "document")
VOTES = ("central", "majority")
DEFAULT_VOTE = "majority"  # as good or better than central on BC5CDR and Turku NER (bench/CONTEXT_RESULTS.md)

NO_DOCUMENTS = "the data has no document ids (a doc_id column, -DOCSTART- lines, the BC5CDR layout)"


def resolve_context(requested: str, has_documents: bool, saved: str = "none") -> Tuple[str, str]:
    """The context that runs and what to call it: `requested` (auto: the saved model's, else none); document
    context on data without document ids is each row alone, and its description says why."""
    wanted = requested if requested != "auto" else ("document" if saved == "document" else "none")
    if wanted == "document" and not has_documents:
        return "none", f"none (document context asked for, but {NO_DOCUMENTS})"
    return wanted, wanted


Window = Tuple[int, int, int, int]  # start, end, target_start, target_end (global word indices)


def document_ranges(doc_ids: Sequence[Optional[str]], context: str) -> List[Tuple[int, int]]:
    """Example ranges [first, last) of each document: runs of one doc_id with document context, else singletons."""
    ranges: List[Tuple[int, int]] = []
    for i, doc_id in enumerate(doc_ids):
        joins = context == "document" and doc_id is not None and i > 0 and doc_ids[i - 1] == doc_id
        if joins:
            ranges[-1] = (ranges[-1][0], i + 1)
        else:
            ranges.append((i, i + 1))
    return ranges


def plan_windows(word_lengths: Sequence[int], budget: int) -> List[Tuple[int, int]]:
    """Word ranges [start, end) of overlapping windows of at most `budget` sub-tokens covering all words.

    Consecutive windows overlap by about half a window, so every word has a window in which it
    is far from both edges. A single word longer than the budget gets a window of its own.
    """
    n = len(word_lengths)
    if n == 0:
        return [(0, 0)]
    lengths = [max(1, min(int(x), budget)) for x in word_lengths]
    windows: List[Tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        start = max(start + 1, start + (end - start) // 2)


def most_central_targets(windows: Sequence[Tuple[int, int]], n: int) -> List[Tuple[int, int]]:
    """Target range of each window: the words for which it is the most central window (ties: the earlier)."""
    best = np.full(n, -1, np.int64)
    best_centrality = np.full(n, -1, np.int64)
    for k, (start, end) in enumerate(windows):
        words = np.arange(start, end)
        centrality = np.minimum(words - start, end - 1 - words)
        better = centrality > best_centrality[start:end]
        best[start:end][better] = k
        best_centrality[start:end][better] = centrality[better]
    targets = []
    for k in range(len(windows)):
        mine = np.flatnonzero(best == k)
        if len(mine) and mine[-1] - mine[0] + 1 != len(mine):
            raise AssertionError(f"window {k}: its target words are not contiguous")
        targets.append((int(mine[0]), int(mine[-1]) + 1) if len(mine) else (windows[k][0], windows[k][0]))
    return targets


def context_window(prefix: np.ndarray, first: int, last: int, doc_first: int, doc_last: int,
                   budget: int) -> Tuple[int, int]:
    """Words [start, end) around words [first, last) filled from their document, both sides about equally.

    `prefix[i]` is the number of sub-tokens of the words before word i; the words [first, last)
    must fit in `budget`. The left side gets half the room left; what the right side cannot use
    (at the document's end) goes to the left side too.
    """
    room = budget - int(prefix[last] - prefix[first])
    left_room = room // 2
    start = int(np.searchsorted(prefix, prefix[first] - left_room, side="left"))
    start = max(start, doc_first)
    right_room = room - int(prefix[first] - prefix[start])
    end = int(np.searchsorted(prefix, prefix[last] + right_room, side="right")) - 1
    end = min(end, doc_last)
    left_room = budget - int(prefix[end] - prefix[first])
    start = max(doc_first, int(np.searchsorted(prefix, prefix[first] - left_room, side="left")))
    return start, end


def plan_document_windows(word_lengths: np.ndarray, example_starts: np.ndarray, doc_ranges: Sequence[Tuple[int, int]],
                          budget: int, context: bool) -> List[Window]:
    """Windows of every example of every document (global word indices; see the module docstring).

    `word_lengths` are sub-token counts already capped at `budget`; `example_starts` holds the
    first global word of each example and, last, the total number of words.
    """
    prefix = np.concatenate([[0], np.cumsum(word_lengths, dtype=np.int64)])
    windows: List[Window] = []
    for doc_first_example, doc_last_example in doc_ranges:
        doc_first, doc_last = int(example_starts[doc_first_example]), int(example_starts[doc_last_example])
        for e in range(doc_first_example, doc_last_example):
            first, last = int(example_starts[e]), int(example_starts[e + 1])
            if prefix[last] - prefix[first] <= budget:
                start, end = (context_window(prefix, first, last, doc_first, doc_last, budget) if context
                              else (first, last))
                windows.append((start, end, first, last))
                continue
            spans = plan_windows(word_lengths[first:last], budget)
            for (s, t), (ts, te) in zip(spans, most_central_targets(spans, last - first)):
                windows.append((first + s, first + t, first + ts, first + te))
    return windows
