"""A sharded on-disk cache of classifier features, built once per data file and settings and reused by every run.

The cache stores the rows in shards of fixed-length binary records (token ids, then label + 1,
little-endian, in the token dtype), read back with tf.data.FixedLengthRecordDataset: writing
is about 15x faster than TFRecord (whose per-record write costs as much as a third of the
featurization) and reading about 1.5-2x faster, with nothing to parse. Chunks of the input are
parsed and featurized in worker processes while the reading process writes the shards. The workers
are started fresh (forkserver, else spawn), never forked from the calling process: by then it has
started TensorFlow (and on a GPU node CUDA), and a forked copy of a live CUDA context can hang or crash.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.batch_format import PADDING_MASK, SEGMENT_IDS, TOKEN_IDS
from bert_tf.classifier.features import MentionFeatures, check_seq_length, featurize_mentions, token_dtype
from bert_tf.errors import InputError
from bert_tf import lifecycle
from bert_tf.io_utils import atomic_directory
from bert_tf.tokenization import WordPieceTokenizer

FORMAT_VERSION = 1
META_FILE = "meta.json"
SHARD_PATTERN = "shard-{:05d}.bin"
SHUFFLE_BUFFER = 65536
AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow for featurization alone
HASH_CHUNK_BYTES = 8 * 1024 * 1024
STALE_TMP_SECONDS = 24 * 3600
# Featurizing processes of a cache build (default: the usable cores, at most MAX_WORKERS; run_classifier.py's
# --featurize_workers), 1 featurizes in the calling process.
MAX_WORKERS = 8
START_METHODS = ("forkserver", "spawn")  # the first one this platform has


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """How records become a feature cache: the featurization (tokenizer, length, replacement, label set) and
    how the build is cut up (records per chunk and per shard, featurizing processes; None: default_workers())."""

    tokenizer: WordPieceTokenizer
    max_seq_length: int
    replace_span: Optional[str]
    labels: Sequence[str]
    chunk_size: int = 8192
    shard_size: int = 262144
    workers: Optional[int] = None


# ----------------------------------------------------------------------------- cache key


def file_digest(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 8 MB chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buffer)
                if not n:
                    break
                digest.update(view[:n])
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror or e})", path) from None
    return digest.hexdigest()


def cache_key(
    data_path: str,
    tokenizer: WordPieceTokenizer,
    max_seq_length: int,
    replace_span: Optional[str],
    labels: Sequence[str],
) -> str:
    """Hex sha256 naming the features of a data file: changes with anything they depend on."""
    parts = {
        "format_version": FORMAT_VERSION,
        "data_sha256": file_digest(data_path),
        "data_size": os.path.getsize(data_path),
        "vocab_sha256": file_digest(tokenizer.source),
        "lowercase": bool(tokenizer.lowercase),
        "max_seq_length": int(max_seq_length),
        "replace_span": replace_span,
        "labels": list(labels),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- cache files


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """What meta.json of a feature cache says, with the directory it was read from."""

    cache_dir: str
    key: str
    num_examples: int
    shard_files: Tuple[str, ...]
    shard_examples: Tuple[int, ...]
    max_seq_length: int
    dtype: str
    labels: Tuple[str, ...]
    pad_id: int
    replace_span: Optional[str] = None
    mentions_truncated: int = 0
    left_truncated: int = 0
    right_truncated: int = 0
    rows_extra_columns: int = 0  # what the published reader's rule tolerated (bert_tf.classifier.data.TOLERATED)
    rows_without_ids: int = 0
    empty_mentions: int = 0
    created: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def shard_paths(self) -> List[str]:
        """Full paths of the shard files, in example order."""
        return [os.path.join(self.cache_dir, name) for name in self.shard_files]

    @property
    def record_bytes(self) -> int:
        """Bytes per example: max_seq_length token ids and the label slot."""
        return (self.max_seq_length + 1) * np.dtype(self.dtype).itemsize

    def to_meta(self) -> Dict[str, Any]:
        """The meta.json contents (everything but cache_dir)."""
        meta = dataclasses.asdict(self)
        del meta["cache_dir"]
        meta["num_shards"] = len(self.shard_files)
        meta["record_layout"] = (
            f"little-endian {self.dtype}: {self.max_seq_length} token ids, then label id + 1 (0: none)"
        )
        return meta


def _info_from_meta(cache_dir: str, meta: Dict[str, Any]) -> CacheInfo:
    """CacheInfo from parsed meta.json; KeyError/TypeError/ValueError when it is malformed."""
    fields = {f.name for f in dataclasses.fields(CacheInfo)} - {"cache_dir"}
    values = {name: meta[name] for name in fields if name in meta}
    for name in ("shard_files", "shard_examples", "labels"):
        values[name] = tuple(meta[name])
    info = CacheInfo(cache_dir=cache_dir, **values)
    if info.format_version != FORMAT_VERSION or info.dtype not in ("uint16", "int32"):
        raise ValueError("unsupported cache format")
    if len(info.shard_files) != len(info.shard_examples) or sum(info.shard_examples) != info.num_examples:
        raise ValueError("shard counts do not add up")
    return info


def load_cache_info(cache_dir: str) -> Optional[CacheInfo]:
    """The CacheInfo of a finished cache directory; None when absent, malformed or incomplete."""
    try:
        with open(os.path.join(cache_dir, META_FILE), encoding="utf-8") as f:
            info = _info_from_meta(os.path.abspath(cache_dir), json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for path, count in zip(info.shard_paths, info.shard_examples):
        try:
            if os.path.getsize(path) != count * info.record_bytes:
                return None
        except OSError:
            return None
    return info


class _ShardWriter:
    """Appends record rows to shard files of at most `shard_size` examples each."""

    def __init__(self, directory: str, shard_size: int):
        self.directory = directory
        self.shard_size = shard_size
        self.names: List[str] = []
        self.counts: List[int] = []
        self._file = None

    def write(self, rows: np.ndarray) -> None:
        """Append rows [n, L + 1], opening new shards as they fill."""
        while rows.shape[0]:
            if self._file is None or self.counts[-1] == self.shard_size:
                self._open_next()
            take = min(rows.shape[0], self.shard_size - self.counts[-1])
            self._file.write(rows[:take].tobytes())
            self.counts[-1] += take
            rows = rows[take:]

    def _open_next(self) -> None:
        """Close the current shard and start the next one."""
        self.close()
        self.names.append(SHARD_PATTERN.format(len(self.names)))
        self.counts.append(0)
        self._file = open(os.path.join(self.directory, self.names[-1]), "wb")

    def close(self) -> None:
        """Flush and close the open shard, if any."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


Columns = Tuple[Sequence[str], Sequence[str], Sequence[str], Sequence[str]]  # labels, lefts, mentions, rights


class RecordChunks:
    """Records already in memory, as chunks: lists of (label, left, mention, right) tuples.

    The interface of every record source of build_feature_cache: `chunks(size)` yields chunks in
    order (in the reading process) and `columns(chunk)` turns one into columns (in the process
    that featurizes it, so that sources such as consensus.TsvLineChunks parse there, in parallel).
    """

    def __init__(self, records: Iterable[Tuple[str, str, str, str]]):
        self.records = records

    def __getstate__(self) -> Dict[str, Any]:
        """What a featurizing process gets: not the records (maybe a generator; it needs only `columns`)."""
        return {"records": ()}

    def chunks(self, size: int) -> Iterable[List[Tuple[str, str, str, str]]]:
        """Lists of up to `size` consecutive records."""
        iterator = iter(self.records)
        while True:
            chunk = list(itertools.islice(iterator, size))
            if not chunk:
                return
            yield chunk

    def columns(self, chunk: List[Tuple[str, str, str, str]]) -> Columns:
        """(labels, lefts, mentions, rights) of a chunk of records."""
        try:
            columns = tuple(zip(*chunk, strict=True))
        except ValueError:
            raise ValueError("records must all be (label, left, mention, right) tuples") from None
        if len(columns) != 4:
            raise ValueError(f"records must be (label, left, mention, right) tuples, got {len(columns)} fields")
        return columns


def build_feature_cache(
    records: Any,
    cache_dir: str,
    settings: CacheSettings,
    progress: Optional[Callable[[int], None]] = None,
    key: str = "",
) -> CacheInfo:
    """Featurize records into a new cache at `cache_dir`.

    records: an iterable of (label, left, mention, right) tuples, or a chunked source with the
    interface of RecordChunks (e.g. consensus.TsvLineChunks, whose lines are parsed and checked in
    the featurizing processes).

    Streams chunk by chunk; the directory appears (atomically, replacing an old one) only
    when complete. A label not in the settings' labels gets id -1 ("no gold label"). `progress` is
    called with the number of examples written after every chunk. With more than one chunk,
    chunks are parsed and featurized by the settings' `workers` forked processes (default:
    default_workers()) while this process reads the chunks and writes the shards; the cache is the
    same either way.
    """
    check_seq_length(settings.max_seq_length)
    if settings.chunk_size < 1 or settings.shard_size < 1:
        raise ValueError("chunk_size and shard_size must be positive")
    labels, tokenizer = list(settings.labels), settings.tokenizer
    dtype = token_dtype(tokenizer.vocab_size).newbyteorder("<")
    if len(set(labels)) != len(labels) or len(labels) >= np.iinfo(dtype).max:
        raise ValueError(f"labels must be distinct and fewer than {np.iinfo(dtype).max}: {labels}")
    if settings.replace_span is not None:
        tokenizer.token_to_id(settings.replace_span)  # fail before any work
    with atomic_directory(cache_dir) as tmp:
        writer = _ShardWriter(tmp, settings.shard_size)
        try:
            source = records if hasattr(records, "columns") else RecordChunks(records)
            job = _ChunkJob(source, settings)
            workers = default_workers() if settings.workers is None else settings.workers
            totals = _write_records(job, writer, dtype, settings.chunk_size, progress, workers)
        finally:
            writer.close()
        info = CacheInfo(
            cache_dir=os.path.abspath(cache_dir), key=key, shard_files=tuple(writer.names),
            shard_examples=tuple(writer.counts), max_seq_length=int(settings.max_seq_length), dtype=dtype.name,
            labels=tuple(labels), pad_id=int(tokenizer.pad_id), replace_span=settings.replace_span,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **totals,
        )
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
            json.dump(info.to_meta(), f, indent=2, ensure_ascii=False)
            f.write("\n")
    return info


def default_workers() -> int:
    """Featurizing processes for a cache build: the usable cores, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


ChunkResult = Tuple[np.ndarray, MentionFeatures, Dict[str, int]]  # label ids, features, tolerated-row counts


class _ChunkJob:
    """What turns one chunk of a record source into label ids and features."""

    def __init__(self, source: Any, settings: CacheSettings):
        self.source, self.settings = source, settings
        self.length = int(settings.max_seq_length)
        self.label_ids = {label: i for i, label in enumerate(settings.labels)}

    def __call__(self, chunk: Any) -> ChunkResult:
        parse = getattr(self.source, "parse", None)  # a source that counts what it tolerated (TsvLineChunks)
        (gold, lefts, mentions, rights), tolerated = parse(chunk) if parse else (self.source.columns(chunk), {})
        gold_ids = np.fromiter(map(self.label_ids.get, gold, itertools.repeat(-1)), np.int64, len(gold))
        features = featurize_mentions(lefts, mentions, rights, self.settings.tokenizer, self.length,
                                      self.settings.replace_span)
        return gold_ids, features, tolerated


_WORKER_JOB: Optional[_ChunkJob] = None


def _init_worker(job: _ChunkJob) -> None:
    """Pool initializer: remember the job every chunk is processed with (pickled once per worker)."""
    global _WORKER_JOB
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one process per core already
    _WORKER_JOB = job


def _run_worker_job(chunk: Any) -> ChunkResult:
    return _WORKER_JOB(chunk)


def _processed_chunks(
    job: _ChunkJob, chunks: Iterable[Any], workers: int
) -> Iterable[ChunkResult]:
    """(label ids, features, tolerated-row counts) of every chunk, in order; chunks go to `workers` fresh processes
    (at most two each in flight, so that the input still streams) when there are several."""
    chunks = iter(chunks)
    head = list(itertools.islice(chunks, 2))
    if workers <= 1 or len(head) < 2 or multiprocessing.current_process().daemon:
        for chunk in itertools.chain(head, chunks):
            yield job(chunk)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context(next(method for method in START_METHODS if method in methods))
    with _main_script_hidden():
        pool = context.Pool(workers, initializer=_init_worker, initargs=(job,))
    with pool:
        pending: "collections.deque" = collections.deque()
        for chunk in itertools.chain(head, chunks):
            pending.append(pool.apply_async(_run_worker_job, (chunk,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


@contextlib.contextmanager
def _main_script_hidden():
    """While workers start: a fresh worker runs the main script again (for functions pickled from it) unless
    the main module names none. The job lives in this module, and the scripts import TensorFlow (seconds
    and hundreds of MB a worker), so the workers are started without it."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)


def _write_records(
    job: _ChunkJob,
    writer: "_ShardWriter",
    dtype: np.dtype,
    chunk_size: int,
    progress: Optional[Callable[[int], None]],
    workers: int,
) -> Dict[str, int]:
    """Featurize the job's source chunk by chunk into the shards; the example, truncation and tolerated-row
    counts."""
    totals = dict(num_examples=0, mentions_truncated=0, left_truncated=0, right_truncated=0, rows_extra_columns=0,
                  rows_without_ids=0, empty_mentions=0)
    for gold_ids, features, tolerated in _processed_chunks(job, job.source.chunks(chunk_size), workers):
        for kind, count in tolerated.items():
            totals[kind] += count
        if not gold_ids.size:
            continue
        rows = np.empty((gold_ids.size, job.length + 1), dtype)
        rows[:, : job.length] = features.token_ids
        rows[:, job.length] = gold_ids + 1
        writer.write(rows)
        lifecycle.enter_phase("feature cache")  # a chunk written, the cache not complete
        _add_counts(totals, features, gold_ids.size)
        if progress is not None:
            progress(totals["num_examples"])
    return totals


def _add_counts(totals: Dict[str, int], features: MentionFeatures, n: int) -> None:
    """Add a chunk's example and truncation counts to the running totals."""
    totals["num_examples"] += n
    totals["mentions_truncated"] += features.mentions_truncated
    totals["left_truncated"] += features.left_truncated
    totals["right_truncated"] += features.right_truncated


def _remove_stale_temps(cache_root: str, name: str) -> None:
    """Remove temporary build directories of `name` left by killed runs over a day ago."""
    try:
        entries = os.listdir(cache_root)
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if entry.startswith(f".{name}.") and (entry.endswith(".tmp") or entry.endswith(".tmp.old")):
            path = os.path.join(cache_root, entry)
            try:
                stale = now - os.path.getmtime(path) > STALE_TMP_SECONDS
            except OSError:
                continue
            if stale:
                shutil.rmtree(path, ignore_errors=True)


def _print_stderr(message: str) -> None:
    """Default log: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def get_or_build_cache(
    records_factory: Callable[[], Any],
    data_path: str,
    cache_root: str,
    settings: CacheSettings,
    progress: Optional[Callable[[int], None]] = None,
    log: Callable[[str], None] = _print_stderr,
) -> CacheInfo:
    """The feature cache <cache_root>/<key>/ of a data file, built (from records_factory())
    only when no finished cache with that key exists."""
    key = cache_key(data_path, settings.tokenizer, settings.max_seq_length, settings.replace_span, settings.labels)
    cache_dir = os.path.join(cache_root, key)
    info = load_cache_info(cache_dir)
    if info is not None and info.key == key:
        log(f"reusing feature cache {cache_dir} ({info.num_examples} examples)")
        return info
    _remove_stale_temps(cache_root, key)
    log(f"building feature cache {cache_dir} from {data_path}")
    info = build_feature_cache(records_factory(), cache_dir, settings, progress=progress, key=key)
    log(f"built feature cache {cache_dir} ({info.num_examples} examples, {len(info.shard_files)} shards)")
    return info


# ----------------------------------------------------------------------------- reading back


def cache_arrays(info: CacheInfo) -> Tuple[np.ndarray, np.ndarray]:
    """(token ids [N, L] in the cache dtype, label ids int32 [N], -1 for none), all in memory."""
    width = info.max_seq_length + 1
    dtype = np.dtype(info.dtype).newbyteorder("<")
    parts = [np.fromfile(path, dtype).reshape(-1, width) for path in info.shard_paths]
    rows = np.concatenate(parts) if parts else np.zeros((0, width), dtype)
    token_ids = rows[:, : info.max_seq_length].astype(np.dtype(info.dtype))
    return token_ids, rows[:, info.max_seq_length].astype(np.int32) - 1


def cache_dataset(
    info: CacheInfo,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_remainder: bool = False,
    num_parallel_calls: int = AUTOTUNE,
    repeat: bool = False,
    with_index: bool = False,
) -> "tf.data.Dataset":  # noqa: F821
    """A tf.data pipeline over a cache: ({"token_ids", "padding_mask", "segment_ids"}: int32
    [B, L], labels: int32 [B]). Without shuffle the order is the input order; with it,
    shards are interleaved in a seeded random order and examples go through a shuffle buffer
    (reshuffled every epoch). `with_index` adds "index" (int32 [B]) to the features: each
    example's position in the input, for putting distributed predictions back in order."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dataset = _indexed_records(info, shuffle, seed, num_parallel_calls)
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    parse = _record_parser(info)

    def parse_indexed(indices, records):
        features, labels = parse(records)
        if with_index:
            features["index"] = tf.cast(indices, tf.int32)
        return features, labels

    dataset = dataset.map(parse_indexed, num_parallel_calls=num_parallel_calls, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _indexed_records(info: CacheInfo, shuffle: bool, seed: int,
                     num_parallel_calls: int) -> "tf.data.Dataset":  # noqa: F821
    """(input position, raw record) of every example; shards in a seeded random order with shuffle."""
    import tensorflow as tf

    record_bytes = info.record_bytes
    paths = tf.constant(info.shard_paths, tf.string, shape=[len(info.shard_paths)])
    if not (shuffle and len(info.shard_paths) > 1):
        return tf.data.FixedLengthRecordDataset(paths, record_bytes, buffer_size=1 << 20).enumerate()
    offsets = tf.constant(np.cumsum((0,) + tuple(info.shard_examples[:-1])), tf.int64)
    files = tf.data.Dataset.from_tensor_slices((paths, offsets))
    files = files.shuffle(len(info.shard_paths), seed=seed, reshuffle_each_iteration=True)

    def shard_records(path, offset):
        return tf.data.FixedLengthRecordDataset(path, record_bytes, buffer_size=1 << 20).enumerate(offset)

    return files.interleave(shard_records, cycle_length=min(len(info.shard_paths), 8), block_length=1,
                            num_parallel_calls=num_parallel_calls, deterministic=True)


def _record_parser(info: CacheInfo) -> Callable:
    """A function from a batch of raw records to (features, labels) tensors."""
    import tensorflow as tf

    length, pad_id = info.max_seq_length, info.pad_id
    tf_dtype = tf.uint16 if info.dtype == "uint16" else tf.int32

    def parse(records):
        values = tf.cast(tf.io.decode_raw(records, tf_dtype, little_endian=True), tf.int32)
        values = tf.reshape(values, [-1, length + 1])
        token_ids = values[:, :length]
        features = {
            TOKEN_IDS: token_ids,
            PADDING_MASK: tf.cast(tf.not_equal(token_ids, pad_id), tf.int32),
            SEGMENT_IDS: tf.zeros_like(token_ids),
        }
        return features, values[:, length] - 1

    return parse
