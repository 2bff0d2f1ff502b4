"""Raw-text pretraining data streamed from the input files, so that memory does not grow with the corpus.

A first pass (`TextCorpus`) reads every file once, document by document: it checks the input (bad files fail
before anything is written), decides each document's side (held out when a seeded hash of its text falls below
`eval_fraction`, so the split needs no list of documents) and keeps only the length of each packed block (2 bytes
a block). Every epoch then re-reads the files in a seeded order, packs each document into blocks again and draws
them through a seeded shuffle buffer of `shuffle_buffer` blocks; runs of LENGTH_GROUP batches are grouped by block
length (little padding) and put in a seeded order. A block's index is its position in the files' own order, and
its masks depend only on (seed, epoch, index). The epoch's order is a pure function of (seed, epoch) and the block
lengths, so a resumed run re-creates the stream and skips the batches already trained (without masking them), and
the share of real tokens is computed from the lengths alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bert_tf.batch_format import FEATURE_KEYS, LABELS
from bert_tf.errors import InputError
from bert_tf.pretraining import inputs
from bert_tf.pretraining.masking import (EVAL_STREAM, MASKED_POSITIONS, MaskingConfig, document_blocks, masked_batch,
                                         padded_length)
from bert_tf.tokenization import WordPieceTokenizer

LENGTH_GROUP = 50  # batches whose blocks are grouped by length
SHUFFLE_BUFFER = 10_000  # blocks (about 0.6 MiB a thousand blocks of 128 tokens)
HASH_RANGE = 1 << 64
DRAWS = 1024  # shuffle-buffer draws made at a time
Item = Tuple[int, int, Optional[np.ndarray]]  # (block index, length, ids or None when only the lengths are wanted)


def document_hash(document: Sequence[str], seed: int) -> int:
    """A seeded 64-bit hash of a document's text (decides its side: the same document always falls the same way)."""
    digest = hashlib.blake2b(f"{seed}\n".encode() + "\n".join(document).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def batch_signature(max_predictions: int) -> Dict[str, tf.TensorSpec]:
    """The tf.data element of a masked-LM batch."""
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in FEATURE_KEYS}
    spec[MASKED_POSITIONS] = tf.TensorSpec([None, max_predictions], tf.int32)
    spec[LABELS] = tf.TensorSpec([None, max_predictions], tf.int32)
    return spec


@dataclasses.dataclass
class Scan:
    """What the first pass found: per file the lengths of its (training, held-out) blocks, the documents of each
    side, the training words, the words split, and the smallest and largest document hash."""

    lengths: List[Tuple[np.ndarray, np.ndarray]]
    documents: List[int]
    words: int
    words_cut: int
    hashes: Tuple[int, int]


class TextCorpus:
    """Text files read as documents, split by document hash into training and held-out sides, packed into blocks
    on every read."""

    def __init__(self, paths: Sequence[str], tokenizer: WordPieceTokenizer, max_seq_length: int,
                 is_continuation: np.ndarray, eval_fraction: float, seed: int):
        self.paths, self.tokenizer, self.max_seq_length = list(paths), tokenizer, max_seq_length
        self.is_continuation, self.seed = is_continuation, seed
        self.threshold = int(eval_fraction * HASH_RANGE) if eval_fraction > 0 else 0
        self.kinds = [inputs.file_format(p) for p in self.paths]
        self.scan = self._scan()
        total = sum(self.scan.documents)
        if eval_fraction > 0 and total >= 2 and 0 in self.scan.documents:  # hold out one, train on one at least
            self.threshold = self.scan.hashes[0] + 1 if self.scan.documents[1] == 0 else self.scan.hashes[1]
            self.scan = self._scan()

    def is_held_out(self, document: Sequence[str]) -> bool:
        """Whether the document belongs to the held-out side."""
        return document_hash(document, self.seed) < self.threshold

    def documents(self, file_index: int, held: bool) -> Iterator[Sequence[str]]:
        """One file's documents of one side, streamed."""
        for document in inputs.iter_file_documents(self.paths[file_index], self.kinds[file_index]):
            if self.is_held_out(document) == held:
                yield document

    def blocks(self, file_index: int, held: bool) -> Iterator[np.ndarray]:
        """The packed blocks of one file's documents of one side, streamed."""
        for document in self.documents(file_index, held):
            yield from document_blocks(document, self.tokenizer, self.max_seq_length, self.is_continuation)[0]

    def block_count(self, held: bool) -> int:
        """The blocks of one side."""
        return sum(len(lengths[held]) for lengths in self.scan.lengths)

    def _scan(self) -> Scan:
        scan = Scan([], [0, 0], 0, 0, (HASH_RANGE, -1))
        for path, kind in zip(self.paths, self.kinds):
            sides: Tuple[List[int], List[int]] = ([], [])
            for document in inputs.iter_file_documents(path, kind):
                value = document_hash(document, self.seed)
                held = value < self.threshold
                blocks, cut = document_blocks(document, self.tokenizer, self.max_seq_length, self.is_continuation)
                sides[held].extend(len(b) for b in blocks)
                scan.documents[held] += 1
                scan.words += 0 if held else sum(len(s.split()) for s in document)
                scan.words_cut += cut
                scan.hashes = (min(scan.hashes[0], value), max(scan.hashes[1], value))
            scan.lengths.append((np.asarray(sides[0], np.uint16), np.asarray(sides[1], np.uint16)))
        return scan


def shuffled(items: Iterator[Item], size: int, rng: np.random.Generator) -> Iterator[Item]:
    """The items through a shuffle buffer of `size`: each new item replaces a random one, which comes out."""
    buffer: List[Item] = []
    draws = np.zeros(0, np.int64)
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        if not draws.size:
            draws = rng.integers(0, size, DRAWS)
        slot, draws = int(draws[0]), draws[1:]
        yield buffer[slot]
        buffer[slot] = item
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]


def length_grouped(items: Iterator[Item], batch_size: int, rng: np.random.Generator) -> Iterator[List[Item]]:
    """Full batches of the items: each run of LENGTH_GROUP batches' items sorted by length, cut into batches, and
    the run's batches in a random order (the last incomplete batch left out)."""
    while True:
        group = list(itertools.islice(items, LENGTH_GROUP * batch_size))
        group = sorted(group[: len(group) // batch_size * batch_size], key=lambda item: item[1])
        if not group:
            return
        batches = [group[i: i + batch_size] for i in range(0, len(group), batch_size)]
        for index in rng.permutation(len(batches)):
            yield batches[index]


class MaskedLMStream:
    """One side of a TextCorpus as masked-LM batches: `batch_size` blocks per optimizer step (all micro-batches and
    replicas together), each epoch a new seeded order and new masks; or, for evaluation, every block once in the
    files' order with fixed masks."""

    def __init__(self, corpus: TextCorpus, held: bool, masking: MaskingConfig, seed: int, batch_size: int,
                 pad_id: int, shuffle_buffer: int = SHUFFLE_BUFFER):
        self.corpus, self.held, self.masking, self.seed = corpus, held, masking, seed
        self.batch_size, self.pad_id, self.shuffle_buffer = batch_size, pad_id, shuffle_buffer
        counts = [len(lengths[held]) for lengths in corpus.scan.lengths]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.num_blocks = int(self.offsets[-1])

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per epoch."""
        return self.num_blocks // self.batch_size

    def _file_items(self, file_index: int, with_ids: bool) -> Iterator[Item]:
        offset = int(self.offsets[file_index])
        if not with_ids:
            lengths = self.corpus.scan.lengths[file_index][self.held]
            return ((offset + k, int(n), None) for k, n in enumerate(lengths))
        return ((offset + k, len(ids), ids) for k, ids in enumerate(self.corpus.blocks(file_index, self.held)))

    def epoch_batches(self, epoch: int, with_ids: bool = True) -> Iterator[List[Item]]:
        """The epoch's batches of (index, length, ids) items (ids None unless `with_ids`): the files in a seeded
        order, a seeded shuffle buffer, then grouped by length. The same without the ids (no tokenizing)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.corpus.paths))
        items = itertools.chain.from_iterable(self._file_items(int(f), with_ids) for f in order)
        mixed = shuffled(items, self.shuffle_buffer, np.random.default_rng([self.seed, epoch, 1]))
        return length_grouped(mixed, self.batch_size, np.random.default_rng([self.seed, epoch, 2]))

    def real_token_share(self, epoch: int = 0) -> float:
        """The share of an epoch's batch positions that are real tokens (not padding), from the lengths alone."""
        real = padded = 0
        for batch in self.epoch_batches(epoch, with_ids=False):
            lengths = [n for _, n, _ in batch]
            real += sum(lengths)
            padded += padded_length(max(lengths), max_length=self.corpus.max_seq_length) * len(lengths)
        return real / max(padded, 1)

    def _masked(self, batches: Callable[[], Iterator[List[Item]]], epoch: int) -> tf.data.Dataset:
        def generate() -> Iterator[Dict[str, np.ndarray]]:
            for batch in batches():
                yield masked_batch([(index, ids) for index, _, ids in batch], self.corpus.is_continuation,
                                   self.masking, self.seed, epoch, self.pad_id, max_length=self.corpus.max_seq_length)

        signature = batch_signature(self.masking.max_predictions)
        return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)

    def epoch_dataset(self, epoch: int, first_step: int, end_step: int) -> tf.data.Dataset:
        """The epoch's batches first_step..end_step-1 as a tf.data pipeline (the earlier ones read and skipped
        unmasked; each batch masked while the previous one trains)."""
        return self._masked(lambda: itertools.islice(self.epoch_batches(epoch), first_step, end_step), epoch)

    def eval_dataset(self, batch_size: int) -> Tuple[tf.data.Dataset, int]:
        """(every block once, in the files' order, in batches of `batch_size` (the last may be smaller) with the
        fixed held-out masks; the number of batches)."""
        def batches() -> Iterator[List[Item]]:
            items = itertools.chain.from_iterable(self._file_items(f, True) for f in range(len(self.corpus.paths)))
            while True:
                batch = list(itertools.islice(items, batch_size))
                if not batch:
                    return
                yield batch

        return self._masked(batches, EVAL_STREAM), -(-self.num_blocks // batch_size)


def check_enough_blocks(stream: MaskedLMStream, path: str) -> None:
    """InputError when the text packs into fewer blocks than one batch."""
    if stream.steps_per_epoch < 1:
        raise InputError(f"the text packs into {stream.num_blocks} blocks of max_seq_length="
                         f"{stream.corpus.max_seq_length}, fewer than one batch of {stream.batch_size}", path)
