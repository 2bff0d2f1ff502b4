"""The TFRecords that Google's/NVIDIA's create_pretraining_data.py writes, read as masked-LM batches.

Each record holds fixed-length int64 features input_ids, input_mask, segment_ids [max_seq_length],
masked_lm_positions, masked_lm_ids [max_predictions_per_seq], float masked_lm_weights and next_sentence_labels [1].
The masks are those written (made offline, `dupe_factor` times). Positions of weight 0 carry no label. Every
epoch reads the files in a new seeded order through a seeded shuffle buffer, so a resumed run sees what an
uninterrupted one does. Next-sentence labels (0: B follows A, 1: B is random) are read when every file carries them
and the run trains next-sentence prediction (`next_sentence`); files of which only some carry them are an error.

Every record is checked as it is read (a feature missing or of the wrong length, a token id past the vocabulary, a
masked position past the sequence, a next-sentence label other than 0 or 1); inside `naming_bad_records` the first
bad one raises InputError naming its file and record number (1 = the file's first). A damaged or truncated file is
found when the records are counted, before training.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bert_tf.batch_format import LABELS, PADDING_MASK, SEGMENT_IDS, TOKEN_IDS
from bert_tf.errors import InputError
from bert_tf.pretraining.masking import MASKED_POSITIONS

SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids")
PREDICTION_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
NSP_FEATURE = "next_sentence_labels"  # also the batch key of the labels
SHUFFLE_BUFFER = 1000


def is_tfrecord(path: str) -> bool:
    """True for a TFRecord file: its first 8 bytes are a record length (a little-endian uint64 far below 2**32, so
    bytes 4-7 are zero; text never holds NUL bytes)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[4:8] == b"\x00\x00\x00\x00"


def are_tfrecords(paths: Sequence[str]) -> bool:
    """True when every file is a TFRecord file; InputError when TFRecords and text are mixed."""
    kinds = [is_tfrecord(p) for p in paths]
    if any(kinds) and not all(kinds):
        raise InputError("TFRecords mixed with text files: give one kind", paths[kinds.index(not kinds[0])])
    return bool(kinds) and all(kinds)


def expected_lengths(max_seq_length: int, max_predictions: int) -> Dict[str, int]:
    """The length of every feature a record must hold."""
    return {**{k: max_seq_length for k in SEQUENCE_FEATURES}, **{k: max_predictions for k in PREDICTION_FEATURES}}


def check_record(serialized: bytes, lengths: Dict[str, int], path: str, record: int) -> bool:
    """Whether the record carries next-sentence labels; InputError naming the file and record when a feature is
    missing or of the wrong length."""
    try:
        features = tf.train.Example.FromString(serialized).features.feature
    except Exception:  # protobuf's DecodeError
        raise InputError(f"record {record} is not a tf.train.Example", path) from None
    has_labels = NSP_FEATURE in features
    for name, length in {**lengths, **({NSP_FEATURE: 1} if has_labels else {})}.items():
        if name not in features:
            raise InputError(f"record {record} has no feature {name!r} (create_pretraining_data.py writes "
                             f"{', '.join(lengths)})", path)
        kind = features[name].WhichOneof("kind")
        values = getattr(features[name], kind).value if kind else []
        if len(values) != length:
            raise InputError(f"record {record}: feature {name!r} holds {len(values)} values, expected {length} "
                             "(--max_seq_length / --max_predictions_per_seq as the data was made with)", path)
    return has_labels


def check_same_labels(paths: Sequence[str], carried: Sequence[bool]) -> None:
    """InputError naming the first file that differs from the first one in carrying next-sentence labels."""
    if len(set(carried)) > 1:
        odd = carried.index(not carried[0])
        which = "has no" if carried[0] else "carries"
        raise InputError(f"record 1 {which} feature {NSP_FEATURE!r} and {paths[0]} "
                         f"{'does' if carried[0] else 'does not'}: every file or none must carry it", paths[odd])


def tf_error_message(error: tf.errors.OpError) -> str:
    """The first line of a TensorFlow error without its function-node prefix and op suffix."""
    line = (error.message or str(error)).splitlines()[0]
    line = line.split("}} ", 1)[-1]
    return line.split(" [Op:", 1)[0].strip()


def readable_records(path: str) -> int:
    """How many records of a damaged file read before the damage (one at a time)."""
    count = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            count += 1
    except tf.errors.DataLossError:
        pass
    return count


def count_and_check(paths: Sequence[str], lengths: Dict[str, int]) -> Tuple[int, bool]:
    """(the number of records in the files, whether they carry next-sentence labels); the first record of each
    is checked, a damaged or truncated file named with the record where it breaks, and every file or none must
    carry the labels."""
    total, carried = 0, []
    for path in paths:
        records = tf.data.TFRecordDataset(path)
        try:
            first = next(iter(records.take(1).as_numpy_iterator()), None)
            count = int(records.reduce(np.int64(0), lambda n, _: n + 1))  # streamed: one record in memory at a time
        except tf.errors.DataLossError as e:
            raise InputError(f"record {readable_records(path) + 1} is damaged or truncated "
                             f"({tf_error_message(e)})", path) from None
        if first is None:
            raise InputError("no records", path)
        carried.append(check_record(first, lengths, path, 1))
        total += count
    check_same_labels(paths, carried)
    return total, bool(carried) and carried[0]


BAD_RECORD = re.compile(r"<<bert_tf bad record\|(.*)\|(\d+)\|(.*?)>>", re.S)  # the assertion's message


@contextlib.contextmanager
def naming_bad_records() -> Iterator[None]:
    """Turn the failed check of a record read inside the block into InputError naming its file and record."""
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        found = BAD_RECORD.search(e.message or str(e))
        if found is None:
            raise
        path, number, problem = (_unescape(part) for part in found.groups())
        raise InputError(f"record {number}: {problem}", path) from None


def _unescape(text: str) -> str:
    """A string as TensorFlow's assertion printed it (C escapes: quotes, non-ASCII bytes) back as it was."""
    return codecs.escape_decode(text.encode("utf-8"))[0].decode("utf-8", "replace")


def _join(*parts) -> tf.Tensor:
    """One string tensor of strings and int tensors."""
    return tf.strings.join([p if isinstance(p, str) else tf.strings.as_string(p) for p in parts])


def record_problems(features: Dict[str, tf.Tensor], lengths: Dict[str, int], vocab_size: int,
                    max_seq_length: int) -> List[Tuple[tf.Tensor, tf.Tensor]]:
    """(whether the record passes, what is wrong otherwise) for each check of one parsed record (dense features,
    of any length), in the order they are reported."""
    checks = []
    for name, length in lengths.items():
        size = tf.size(features[name])
        checks.append((tf.equal(size, length), _join(f"feature {name!r} holds ", size, f" values, expected {length} "
                                                     "(missing, or made with another --max_seq_length / "
                                                     "--max_predictions_per_seq)")))
    for name in ("input_ids", "masked_lm_ids"):
        ids = features[name]
        worst = tf.where(tf.reduce_any(ids < 0), tf.reduce_min(ids), tf.reduce_max(ids))
        checks.append((tf.reduce_all((ids >= 0) & (ids < vocab_size)),
                       _join(f"{name} holds token id ", worst, f", outside the vocabulary of {vocab_size} ids (data "
                             "made with another vocab.txt?)")))
    positions = features["masked_lm_positions"]
    checks.append((tf.reduce_all((positions >= 0) & (positions < max_seq_length)),
                   _join("masked_lm_positions holds position ", tf.reduce_max(positions),
                         f", outside the sequence of {max_seq_length} tokens")))
    if NSP_FEATURE in features:
        labels = features[NSP_FEATURE]
        checks.append((tf.reduce_all((labels == 0) | (labels == 1)),
                       _join(f"{NSP_FEATURE} holds ", tf.reduce_max(labels), ", expected 0 or 1")))
    return checks


class TFRecordData:
    """create_pretraining_data.py records in batches of `batch_size`, per epoch in a new seeded order; the batches
    hold the next-sentence labels (NSP_FEATURE) when `next_sentence` is set (the files must carry them). Every record
    is checked as it is read (see the module docstring; `vocab_size`: the token ids it allows)."""

    def __init__(self, paths: Sequence[str], max_seq_length: int, max_predictions: int, batch_size: int,
                 seed: int = 0, vocab_size: int = 2 ** 31 - 1):
        self.paths, self.batch_size, self.seed = list(paths), batch_size, seed
        self.max_seq_length, self.vocab_size = max_seq_length, vocab_size
        self.lengths = expected_lengths(max_seq_length, max_predictions)
        self.num_records, self.has_next_sentence_labels = count_and_check(self.paths, self.lengths)
        self.next_sentence = False
        self._eval_datasets: Dict[Tuple[int, bool], tf.data.Dataset] = {}
        if self.num_records < batch_size:
            raise InputError(f"{self.num_records} records, fewer than one batch of {batch_size}", self.paths[0])

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per epoch."""
        return self.num_records // self.batch_size

    def describe(self) -> str:
        """One line for the run table."""
        labels = "with" if self.has_next_sentence_labels else "without"
        return (f"{self.num_records} records in {len(self.paths)} file(s); masks as written; {labels} next-sentence "
                "labels")

    def _feature_lengths(self) -> Dict[str, int]:
        return {**self.lengths, **({NSP_FEATURE: 1} if self.next_sentence else {})}

    def _checked(self, path: tf.Tensor, number: tf.Tensor, serialized: tf.Tensor) -> tf.Tensor:
        """The serialized record, once its checks pass (a failed one: an InvalidArgumentError that
        naming_bad_records turns into InputError)."""
        lengths = self._feature_lengths()
        spec = {k: tf.io.VarLenFeature(tf.float32 if k == "masked_lm_weights" else tf.int64) for k in lengths}
        features = {k: tf.sparse.to_dense(v) for k, v in tf.io.parse_single_example(serialized, spec).items()}
        checks = record_problems(features, lengths, self.vocab_size, self.max_seq_length)
        problem = tf.constant("")
        for passed, message in reversed(checks):
            problem = tf.where(passed, problem, message)
        report = tf.strings.join(["<<bert_tf bad record|", path, "|", tf.strings.as_string(number), "|", problem, ">>"])
        ok = tf.reduce_all(tf.stack([passed for passed, _ in checks]))
        with tf.control_dependencies([tf.debugging.Assert(ok, [report])]):
            return tf.identity(serialized)

    def _records(self, paths: Sequence[str]) -> tf.data.Dataset:
        """The files' records in order, each checked as it is read."""
        def numbered(path: tf.Tensor) -> tf.data.Dataset:
            return tf.data.TFRecordDataset(path).enumerate(start=1).map(lambda i, r: (path, i, r))

        files = tf.data.Dataset.from_tensor_slices(tf.constant(list(paths), tf.string))
        return files.flat_map(numbered).map(self._checked)

    def _parse(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        spec = {k: tf.io.FixedLenFeature([n], tf.float32 if k == "masked_lm_weights" else tf.int64)
                for k, n in self._feature_lengths().items()}
        f = tf.io.parse_example(serialized, spec)
        labels = tf.where(f["masked_lm_weights"] > 0, f["masked_lm_ids"], -1)
        batch = {TOKEN_IDS: tf.cast(f["input_ids"], tf.int32), PADDING_MASK: tf.cast(f["input_mask"], tf.int32),
                 SEGMENT_IDS: tf.cast(f["segment_ids"], tf.int32),
                 MASKED_POSITIONS: tf.cast(f["masked_lm_positions"], tf.int32), LABELS: tf.cast(labels, tf.int32)}
        if self.next_sentence:
            batch[NSP_FEATURE] = tf.cast(f[NSP_FEATURE][:, 0], tf.int32)
        return batch

    def epoch_dataset(self, epoch: int, first_step: int, end_step: int) -> tf.data.Dataset:
        """The epoch's batches first_step..end_step-1: the files in a seeded order through a seeded shuffle
        buffer (the same order when a resumed run re-creates it)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.paths))
        records = self._records([self.paths[i] for i in order]).shuffle(
            SHUFFLE_BUFFER, seed=int(np.random.default_rng([self.seed, epoch, 1]).integers(2**31)),
            reshuffle_each_iteration=False)
        batched = records.batch(self.batch_size, drop_remainder=True).skip(first_step).take(end_step - first_step)
        return batched.map(self._parse).prefetch(2)

    def eval_dataset(self, batch_size: int) -> Tuple[tf.data.Dataset, int]:
        """(every record once, in file order, in batches of `batch_size`; the number of batches): built once per
        batch size and next-sentence setting, read again at each evaluation."""
        key = (batch_size, self.next_sentence)
        if key not in self._eval_datasets:
            self._eval_datasets[key] = self._records(self.paths).batch(batch_size).map(self._parse)
        return self._eval_datasets[key], -(-self.num_records // batch_size)
