"""Next-sentence pairs with masked-LM predictions, drawn from documents exactly as Google's
create_pretraining_data.py draws them: the same `random.Random` calls in the same order (document shuffle, target
lengths, split points, random next documents, truncation, masks, the final shuffle), so that with the same seed the
same instances come out.

A document is a list of sentences, a sentence a list of token ids (Google's FullTokenizer tokens: see
google_tokenizer). An instance keeps its ids compactly (array('i')) while a file's instances wait for the final
shuffle.
"""

from __future__ import annotations

import dataclasses
import random
from array import array
from typing import AbstractSet, List, Sequence

Sentence = Sequence[int]
Document = List[Sentence]


@dataclasses.dataclass(frozen=True)
class InstanceSettings:
    """What drawing instances needs besides the documents: Google's flags and the vocabulary's ids."""

    max_seq_length: int
    short_seq_prob: float
    masked_lm_prob: float
    max_predictions_per_seq: int
    whole_word_mask: bool
    cls_id: int
    sep_id: int
    mask_id: int
    vocab_ids: Sequence[int]  # the id of every vocabulary token, in the order Google's vocab_words lists them
    continuation_ids: AbstractSet[int]  # ids of the tokens that start with "##"


@dataclasses.dataclass
class Instance:
    """One record: the (masked) ids, where segment B starts, the masked positions and their original ids, and
    whether B is a random next."""

    ids: array
    b_start: int
    positions: array
    labels: array
    is_random_next: bool


def documents_instances(documents: List[Document], settings: InstanceSettings, dupe_factor: int,
                        rng: random.Random) -> List[Instance]:
    """Google's create_training_instances after reading: shuffle the documents, draw every document's instances
    dupe_factor times, shuffle the instances."""
    rng.shuffle(documents)
    instances: List[Instance] = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            instances.extend(document_instances(documents, index, settings, rng))
    rng.shuffle(instances)
    return instances


def document_instances(documents: List[Document], index: int, settings: InstanceSettings,
                       rng: random.Random) -> List[Instance]:
    """Google's create_instances_from_document: runs of sentences up to a target length, each split into A and B
    (B the actual continuation, or half the time, and always for a single sentence, the start of a random other
    document, the unused sentences then taken up again)."""
    document = documents[index]
    max_tokens = settings.max_seq_length - 3
    target = max_tokens
    if rng.random() < settings.short_seq_prob:
        target = rng.randint(2, max_tokens)
    instances: List[Instance] = []
    chunk: List[Sentence] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            if chunk:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
                if len(chunk) == 1 or rng.random() < 0.5:
                    tokens_b = random_next(documents, index, target - len(tokens_a), rng)
                    i -= len(chunk) - a_end
                    is_random = True
                else:
                    tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
                    is_random = False
                truncate_pair(tokens_a, tokens_b, max_tokens, rng)
                instances.append(masked_instance(tokens_a, tokens_b, is_random, settings, rng))
            chunk, length = [], 0
        i += 1
    return instances


def random_next(documents: List[Document], index: int, wanted: int, rng: random.Random) -> List[int]:
    """Segment B from another document (ten draws to avoid `index`): its sentences from a random one on, until
    `wanted` tokens are reached."""
    for _ in range(10):
        other = rng.randint(0, len(documents) - 1)
        if other != index:
            break
    document = documents[other]
    tokens: List[int] = []
    for sentence in document[rng.randint(0, len(document) - 1):]:
        tokens.extend(sentence)
        if len(tokens) >= wanted:
            break
    return tokens


def truncate_pair(tokens_a: List[int], tokens_b: List[int], max_tokens: int, rng: random.Random) -> None:
    """Google's truncate_seq_pair: cut the longer segment (B on a tie), at a random end, until both fit."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def masked_instance(tokens_a: List[int], tokens_b: List[int], is_random: bool, settings: InstanceSettings,
                    rng: random.Random) -> Instance:
    """[CLS] A [SEP] B [SEP] with Google's create_masked_lm_predictions applied."""
    ids = [settings.cls_id, *tokens_a, settings.sep_id, *tokens_b, settings.sep_id]
    masked = list(ids)
    groups = candidate_groups(ids, settings, rng)
    wanted = predictions_wanted(len(ids), settings)
    chosen: List[int] = []
    for group in groups:
        if len(chosen) >= wanted:
            break
        if len(chosen) + len(group) > wanted:
            continue
        for position in group:
            masked[position] = replacement(ids[position], settings, rng)
            chosen.append(position)
    chosen.sort()
    return Instance(array("i", masked), len(tokens_a) + 2, array("i", chosen), array("i", [ids[p] for p in chosen]),
                    is_random)


def candidate_groups(ids: List[int], settings: InstanceSettings, rng: random.Random) -> List[List[int]]:
    """The positions that may be masked (all but [CLS] and [SEP]), grouped by word under whole-word masking (a
    "##" piece joins the group before it), in a random order."""
    groups: List[List[int]] = []
    for position, token in enumerate(ids):
        if token in (settings.cls_id, settings.sep_id):
            continue
        if settings.whole_word_mask and groups and token in settings.continuation_ids:
            groups[-1].append(position)
        else:
            groups.append([position])
    rng.shuffle(groups)
    return groups


def predictions_wanted(length: int, settings: InstanceSettings) -> int:
    """Google's num_to_predict for a sequence of `length` tokens."""
    return min(settings.max_predictions_per_seq, max(1, int(round(length * settings.masked_lm_prob))))


def replacement(token: int, settings: InstanceSettings, rng: random.Random) -> int:
    """What a masked position shows: [MASK] 80% of the time, else the token itself or a random vocabulary token,
    half and half."""
    if rng.random() < 0.8:
        return settings.mask_id
    if rng.random() < 0.5:
        return token
    return settings.vocab_ids[rng.randint(0, len(settings.vocab_ids) - 1)]
