"""Packing documents into blocks of whole words and masking them for masked-LM training.

A document's sentences are concatenated (as WordPiece ids) and cut into blocks of at most `max_seq_length - 2`
tokens, each cut at a word start (a piece not beginning with "##"), so that a block holds consecutive text of one
document only and no word is split (unless a single word is longer than a block). Each block becomes
`[CLS] block [SEP]`.

Masking follows Google's create_pretraining_data.py: round(length * masked_lm_prob) positions (at least 1, at most
`max_predictions_per_seq`), chosen as whole words in random order (a word that would overshoot is skipped), of
which 80 % become [MASK], 10 % a random token and 10 % stay. The masks of a block depend only on the seed, the
epoch and the block's index, so the same seed gives the same masks and a resumed run draws what an uninterrupted
one does.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.batch_format import IGNORE_LABEL, LABELS, PADDING_MASK, SEGMENT_IDS, TOKEN_IDS
from bert_tf.tokenization import WordPieceTokenizer

MASKED_POSITIONS = "masked_lm_positions"  # the model input beside FEATURE_KEYS: where the labels sit
EVAL_STREAM = 1 << 30  # the "epoch" of the fixed held-out masks (never a training epoch)


def continuation_table(tokenizer: WordPieceTokenizer) -> np.ndarray:
    """A boolean per vocabulary id: True for the pieces that continue a word ("##...")."""
    table = np.zeros(tokenizer.vocab_size, bool)
    for token, index in tokenizer.tokenizer.get_vocab(with_added_tokens=True).items():
        if token.startswith("##") and index < len(table):
            table[index] = True
    return table


def cut_points(ids: np.ndarray, is_continuation: np.ndarray, block_tokens: int) -> Tuple[List[int], int]:
    """Where to cut one document's ids into blocks of at most `block_tokens`, each cut at a word start; and how
    many words had to be split because they alone are longer than a block."""
    cuts, start, split = [0], 0, 0
    while len(ids) - start > block_tokens:
        end = start + block_tokens
        while end > start and is_continuation[ids[end]]:
            end -= 1
        if end == start:
            end, split = start + block_tokens, split + 1
        cuts.append(end)
        start = end
    return cuts + [len(ids)], split


def document_blocks(sentences: Sequence[str], tokenizer: WordPieceTokenizer, max_seq_length: int,
                    is_continuation: np.ndarray) -> Tuple[List[np.ndarray], int]:
    """One document (its sentences) encoded and packed into blocks `[CLS] ... [SEP]` of at most `max_seq_length`
    tokens; and how many words had to be split."""
    ids = np.fromiter((i for piece in tokenizer.encode_texts(list(sentences)) for i in piece), np.int32)
    if not ids.size:
        return [], 0
    cuts, split = cut_points(ids, is_continuation, max_seq_length - 2)
    ends = np.asarray([tokenizer.cls_id, tokenizer.sep_id], np.int32)
    return [np.concatenate([ends[:1], ids[a:b], ends[1:]]) for a, b in zip(cuts[:-1], cuts[1:])], split


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """What a masked block needs besides its ids."""

    masked_lm_prob: float
    max_predictions: int
    whole_word: bool
    mask_id: int
    vocab_size: int
    special_ids: Tuple[int, ...]


def predictions_for(length: int, masked_lm_prob: float, max_predictions: int) -> int:
    """How many positions a block of `length` tokens ([CLS] and [SEP] included) predicts (Google's rule)."""
    return min(max_predictions, max(1, int(round(length * masked_lm_prob))))


def word_groups(ids: np.ndarray, is_continuation: np.ndarray, whole_word: bool, special_ids: Sequence[int]) -> List[List[int]]:
    """The maskable positions of a block grouped into words (each position alone without whole-word masking)."""
    groups: List[List[int]] = []
    for position, token in enumerate(ids.tolist()):
        if token in special_ids:
            continue
        if whole_word and groups and is_continuation[token] and groups[-1][-1] == position - 1:
            groups[-1].append(position)
        else:
            groups.append([position])
    return groups


def mask_block(ids: np.ndarray, is_continuation: np.ndarray, config: MaskingConfig,
               rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input ids with the masking applied, masked positions, their original ids), both padded to
    max_predictions with position 0 and label IGNORE_LABEL."""
    wanted = predictions_for(len(ids), config.masked_lm_prob, config.max_predictions)
    groups = word_groups(ids, is_continuation, config.whole_word, config.special_ids)
    chosen: List[int] = []
    for index in rng.permutation(len(groups)):
        if len(chosen) >= wanted:
            break
        if len(chosen) + len(groups[index]) <= wanted:
            chosen += groups[index]
    chosen.sort()
    masked = ids.copy()
    draws, random_ids = rng.random(len(chosen)), rng.integers(0, config.vocab_size, len(chosen))
    for position, draw, random_id in zip(chosen, draws, random_ids):
        if draw < 0.8:
            masked[position] = config.mask_id
        elif draw >= 0.9:
            masked[position] = random_id
    positions = np.zeros(config.max_predictions, np.int32)
    labels = np.full(config.max_predictions, IGNORE_LABEL, np.int32)
    positions[: len(chosen)] = chosen
    labels[: len(chosen)] = ids[chosen]
    return masked, positions, labels


def block_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one block's masks in one epoch."""
    return np.random.default_rng([seed, epoch, index])


def masked_batch(blocks: Sequence[Tuple[int, np.ndarray]], is_continuation: np.ndarray, config: MaskingConfig,
                 seed: int, epoch: int, pad_id: int, pad_multiple: int = 8,
                 max_length: Optional[int] = None) -> dict:
    """The batch of `blocks` ((index, ids) pairs) masked for `epoch` (each block's masks drawn from the seed, the
    epoch and its index): padded to the longest block (rounded up to a multiple of `pad_multiple`, at most
    `max_length`), with masked_lm_positions and labels."""
    lengths = np.asarray([len(ids) for _, ids in blocks])
    length = padded_length(int(lengths.max()), pad_multiple, max_length)
    token_ids = np.full((len(blocks), length), pad_id, np.int32)
    positions = np.zeros((len(blocks), config.max_predictions), np.int32)
    labels = np.zeros((len(blocks), config.max_predictions), np.int32)
    for row, (index, ids) in enumerate(blocks):
        masked, positions[row], labels[row] = mask_block(ids, is_continuation, config, block_rng(seed, epoch, index))
        token_ids[row, : len(ids)] = masked
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    return {TOKEN_IDS: token_ids, PADDING_MASK: mask, SEGMENT_IDS: np.zeros_like(token_ids),
            MASKED_POSITIONS: positions, LABELS: labels}


def padded_length(longest: int, pad_multiple: int = 8, max_length: Optional[int] = None) -> int:
    """The padded length of a batch whose longest block has `longest` tokens."""
    length = -(-longest // pad_multiple) * pad_multiple
    return min(length, max_length) if max_length else length
