"""The trainer under MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy (2 local workers).

Mirroring needs the CPU split into logical devices before TensorFlow starts, and multi-worker
training needs one process per worker, so both run in subprocesses: this file is also their
script (`python tests/test_distribution.py mirrored|worker OUT CHECKPOINT`). Each runs one
scenario (train a tiny token classifier on fixed global batches of 4, 3 and 1 rows, predict,
evaluate NER windows, predict classifier probabilities) and saves what it saw; the tests compare
that with a one-device run of the same scenario.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import NER_QUICK, ROOT, TINY_WORDS, StepOutputs  # noqa: E402

GLOBAL_BATCHES = (4, 3, 1)  # even; odd (2+1); smaller than the replicas (1+0: one replica gets nothing)
EPOCHS = 2
TOKEN_LABELS = ["O", "B-X", "I-X"]
CLASS_LABELS = ["a", "b", "out"]
NER_DOC_LENGTHS = (3, 12, 20, 7, 1)  # 1 + 2 + 4 + 1 + 1 = 9 windows of <= 8 words (max_len 10)
NER_MAX_LEN, NER_BATCH = 10, 4  # 9 windows: batches of 4, 4, 1
CLASSIFIER_EXAMPLES, CLASSIFIER_BATCHES = 13, (5, 4)  # last batches: 3 (2+1) and 1 (1+0)
WEIGHT_ATOL = 1e-5  # measured: 6e-8 after 6 steps, which move the weights by 6e-3 (mirrored and workers)
OUTPUT_ATOL = 1e-5  # measured: logits 6e-7, NER loss 4e-8, classifier probabilities 0


# ----- the scenario (runs in the subprocesses) ---------------------------------------------------------------

def _fixed_batches(vocab_size: int) -> List[Dict[str, np.ndarray]]:
    """Token-classification global batches with some unlabelled positions and the rows' ids."""
    rng = np.random.default_rng(5)
    batches, first_row = [], 0
    for size in GLOBAL_BATCHES:
        token_ids = rng.integers(5, vocab_size, size=(size, 12)).astype(np.int32)
        labels = rng.integers(0, len(TOKEN_LABELS), size=(size, 12)).astype(np.int32)
        labels[:, ::4] = -1
        batches.append({"token_ids": token_ids, "padding_mask": np.ones_like(token_ids),
                        "segment_ids": np.zeros_like(token_ids), "labels": labels,
                        "row_id": np.arange(first_row, first_row + size, dtype=np.int32)})
        first_row += size
    return batches


def _batches_dataset(batches: Sequence[Dict[str, np.ndarray]]):
    """A dataset of the batches with an unknown batch size, like the scripts' datasets."""
    import tensorflow as tf

    signature = {k: tf.TensorSpec([None] * v.ndim, tf.int32) for k, v in batches[0].items()}
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)


def _set_head(model, seed: int) -> None:
    """Give the randomly initialised head the same weights in every run."""
    from bert_tf.models import is_head_variable

    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        if is_head_variable(variable):
            variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))


def _train_and_predict(strategy, checkpoint, tokenizer, out: Dict[str, np.ndarray]):
    """Train on the fixed batches for EPOCHS epochs; record weights, step outputs and predictions."""
    from bert_tf import checkpoints, optimization
    from bert_tf.training import Trainer

    with strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, TOKEN_LABELS, "token", 0.0, encoder_dropout=0.0)
        optimizer = optimization.make_optimizer("adamw", 1e-3, 0.01)
    _set_head(task.model, 1)
    initial = task.model.get_weights()
    trainer = Trainer(task.model, optimizer, strategy, passthrough_keys=("row_id",), log_every=1, verbose=False)
    batches = _fixed_batches(tokenizer.vocab_size)
    steps: List[Dict[str, np.ndarray]] = []
    trainer.fit(lambda epoch, first: (_batches_dataset(batches), len(batches)), epochs=EPOCHS,
                outputs=StepOutputs(steps.append), validations_per_epoch=0)
    out["train_row_id"] = np.concatenate([s["row_id"] for s in steps])
    out["train_preds"] = np.concatenate([s["preds"] for s in steps])
    for i, weight in enumerate(task.model.get_weights()):
        out[f"weight_{i}"] = weight
    out["weights_moved"] = np.array(max(float(np.max(np.abs(w - out[f"weight_{i}"]))) for i, w in enumerate(initial)))
    predicted: List[Dict[str, np.ndarray]] = []
    trainer.predict(_batches_dataset(batches), len(batches), predicted.append)
    out["predict_row_id"] = np.concatenate([p["row_id"] for p in predicted])
    out["predict_logits"] = np.concatenate([p["logits"] for p in predicted])
    out["replica_rows"] = np.array([_local_rows(strategy, trainer, b) for b in batches])
    return trainer


def _local_rows(strategy, trainer, batch: Dict[str, np.ndarray]) -> List[int]:
    """Rows each local replica receives of one global batch."""
    distributed = next(iter(trainer.distribute(_batches_dataset([batch]))))
    return [int(t.shape[0]) for t in strategy.experimental_local_results(distributed["row_id"])]


def _pipelines_autotuned(distributed) -> List[int]:
    """Per pipeline feeding a local device, 1 if tf.data autotunes it, else 0. With one replica the
    trainer hands over the dataset itself (one pipeline); with several, TF's distributed iterator
    builds one per device (found through private attributes of TF 2.21's iterators)."""
    import tensorflow as tf

    if isinstance(distributed, tf.data.Dataset):
        return [int(distributed.options().autotune.enabled is not False)]
    iterator = iter(distributed)
    devices = [device for worker in iterator._iterators for device in worker._iterator._device_iterators]
    return [int(device._dataset.options().autotune.enabled is not False) for device in devices]


def _ner_evaluation(trainer, tokenizer, out: Dict[str, np.ndarray]) -> None:
    """Evaluate overlapping windows (an odd number): rows seen, word predictions and metrics."""
    from bert_tf.ner import batching as ner_batching, evaluation as ner_evaluation, prediction as ner_prediction

    rng = random.Random(2)
    docs = [[rng.choice(TINY_WORDS) for _ in range(n)] for n in NER_DOC_LENGTHS]
    tags = [[rng.choice(TOKEN_LABELS[:2]) for _ in doc] for doc in docs]
    eval_set = ner_prediction.make_eval_set(docs, tags, {t: i for i, t in enumerate(TOKEN_LABELS)}, tokenizer,
                                            NER_MAX_LEN)
    buckets = ner_batching.bucket_lengths(NER_MAX_LEN, True)
    batches = ner_batching.make_batches(eval_set.rows.lengths(), NER_BATCH, buckets, shuffle=False)
    seen: List[np.ndarray] = []
    dataset = ner_batching.batches_dataset(eval_set.rows, batches, buckets, tokenizer.pad_id, 1)
    trainer.predict(dataset, len(batches), lambda o: seen.append(o["row_id"]))
    metrics, predictions = ner_evaluation.evaluate(trainer, eval_set, TOKEN_LABELS, NER_BATCH, buckets,
                                                   tokenizer.pad_id, 1)
    out["ner_windows"] = np.array(len(eval_set.rows))
    out["ner_rows_seen"] = np.concatenate(seen)
    out["ner_words"] = np.array([len(p) for p in predictions.label_ids])
    out["ner_label_ids"] = np.concatenate(predictions.label_ids)
    for key in ("loss", "accuracy", "f1"):
        out[f"ner_{key}"] = np.array(metrics[key])


def _classifier_predictions(strategy, checkpoint, tokenizer, scratch: Path, out: Dict[str, np.ndarray]) -> None:
    """Probabilities of a 13-example cache with batches of 5 and 4, and the gathered input positions."""
    from bert_tf import checkpoints
    from bert_tf.classifier import inference as classifier, inputs
    from bert_tf.classifier import feature_cache
    from bert_tf.training import Trainer

    rng = random.Random(3)
    records = [(CLASS_LABELS[i % 3], " ".join(rng.choices(TINY_WORDS, k=4)), rng.choice(TINY_WORDS),
                " ".join(rng.choices(TINY_WORDS, k=3))) for i in range(CLASSIFIER_EXAMPLES)]
    info = feature_cache.build_feature_cache(iter(records), str(scratch / "cache"),
                                             feature_cache.CacheSettings(tokenizer, 16, None, CLASS_LABELS))
    with strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, CLASS_LABELS, "sequence", 0.0, encoder_dropout=0.0)
    _set_head(task.model, 2)
    trainer = Trainer(task.model, None, strategy, verbose=False)
    for batch_size in CLASSIFIER_BATCHES:
        probs, gold = classifier.predict_probabilities(trainer, info, batch_size)
        out[f"clf_probs_{batch_size}"], out[f"clf_gold_{batch_size}"] = probs, gold
        dataset = inputs.as_training_batches(
            feature_cache.cache_dataset(info, batch_size, shuffle=False, seed=0, with_index=True))
        gathered: List[np.ndarray] = []
        trainer.predict(dataset, inputs.steps_for(info.num_examples, batch_size),
                        lambda o: gathered.append(o["index"]))
        out[f"clf_gathered_index_{batch_size}"] = np.concatenate(gathered)


def run_scenario(strategy, checkpoint_dir: str, scratch: Path) -> Dict[str, np.ndarray]:
    """Everything the tests compare, as numpy arrays."""
    from bert_tf import checkpoints
    from bert_tf.tokenization import WordPieceTokenizer

    checkpoint = checkpoints.find_checkpoint(checkpoint_dir)
    tokenizer = WordPieceTokenizer.from_model_dir(checkpoint_dir)
    out: Dict[str, np.ndarray] = {"replicas": np.array(strategy.num_replicas_in_sync)}
    one_batch = _batches_dataset(_fixed_batches(tokenizer.vocab_size)[:1])
    if strategy.num_replicas_in_sync > 1:  # TF's own default, before any Trainer.distribute
        out["pipelines_autotuned_by_tf"] = np.array(_pipelines_autotuned(strategy.experimental_distribute_dataset(one_batch)))
    trainer = _train_and_predict(strategy, checkpoint, tokenizer, out)
    out["pipelines_autotuned"] = np.array(_pipelines_autotuned(trainer.distribute(one_batch)))
    _ner_evaluation(trainer, tokenizer, out)
    _classifier_predictions(strategy, checkpoint, tokenizer, scratch, out)
    return out


def _subprocess_main(mode: str, out_dir: str, checkpoint_dir: str) -> None:
    """`mirrored`: one-device and mirrored runs over 2 logical CPUs; `worker`: this worker's run."""
    import tensorflow as tf

    out = Path(out_dir)
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from bert_tf import distribution
    from bert_tf.distribution import set_seeds

    set_seeds(0)
    if mode == "mirrored":
        runs = {"one_device": distribution.make_strategy("one_device"),
                "mirrored": distribution.make_strategy("mirrored")}
    else:
        strategy = distribution.make_strategy("multi_worker")
        runs = {f"worker{strategy.cluster_resolver.task_id}": strategy}
    for name, strategy in runs.items():
        scratch = out / f"scratch_{name}"
        scratch.mkdir(parents=True, exist_ok=True)
        np.savez(out / f"{name}.npz", **run_scenario(strategy, checkpoint_dir, scratch))


# ----- process helpers (pytest side) -------------------------------------------------------------------------

def _clean_env(**extra: str) -> Dict[str, str]:
    """This environment without cluster settings (SLURM would win over TF_CONFIG), CPU only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "TF_CONFIG"}
    env.update(PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _free_ports(count: int) -> List[int]:
    """`count` different ports free on 127.0.0.1, below the kernel's ephemeral range: TensorFlow's gRPC server must
    bind them itself (it refuses a port another socket holds, even with SO_REUSEPORT), and no connection of any
    process is given a port outside that range, so none can take them before it does."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) if Path(
        "/proc/sys/net/ipv4/ip_local_port_range").is_file() else 32768
    rng, ports = random.Random(), []
    while len(ports) < count:
        port = rng.randrange(10000, low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def _tf_config(ports: Sequence[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def run_processes(commands: Sequence[Sequence[str]], envs: Sequence[Dict[str, str]],
                  log_dir: Path) -> List[Tuple[int, str]]:
    """Start the commands together; (exit status, output) of each. When one fails the others are killed (with
    their process groups: status -9; a worker cannot finish without its peer), and every process is waited for,
    whatever happens (the test's own timeout bounds the wait)."""
    processes: List[subprocess.Popen] = []
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(open(log_dir / f"process{i}.log", "w+", encoding="utf-8"))
                for i in range(len(commands))]
        try:
            for command, env, log in zip(commands, envs, logs):
                processes.append(subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
            while any(p.poll() is None for p in processes) and not any(p.poll() for p in processes):
                time.sleep(0.1)
        finally:
            for process in processes:
                _kill_group(process)
        results = []
        for process, log in zip(processes, logs):
            log.seek(0)
            results.append((process.returncode, log.read()))
        return results


def _kill_group(process: subprocess.Popen) -> None:
    """Kill a process that is still running, and its process group, then reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _assert_ok(results: Sequence[Tuple[int, str]]) -> None:
    for i, (status, output) in enumerate(results):
        assert status == 0, f"process {i} exited with {status}:\n{output[-4000:]}"


def _load(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _max_weight_diff(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> float:
    keys = [k for k in a if k.startswith("weight_")]
    assert keys and len(keys) == len([k for k in b if k.startswith("weight_")])
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in keys)


def _same_outputs(got: Dict[str, np.ndarray], ref: Dict[str, np.ndarray]) -> None:
    """Everything a distributed run produced equals the one-device run (numbers within OUTPUT_ATOL)."""
    for key in ("train_row_id", "train_preds", "predict_row_id", "ner_rows_seen", "ner_words", "ner_label_ids",
                *(f"clf_gold_{b}" for b in CLASSIFIER_BATCHES)):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    for key in ("predict_logits", "ner_loss", "ner_accuracy", "ner_f1",
                *(f"clf_probs_{b}" for b in CLASSIFIER_BATCHES)):
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=OUTPUT_ATOL, err_msg=key)


def _write_ner_data(directory: Path) -> Path:
    """train/val/test CSVs of a learnable pattern: PER after 'met', LOC after 'in', the rest O."""
    import pandas as pd

    rng = random.Random(0)
    directory.mkdir(parents=True)
    for split, count in (("train", 30), ("val", 11), ("test", 13)):
        rows = []
        for _ in range(count):
            tokens, tags = [], []
            for _ in range(rng.randint(1, 3)):
                cue, entity = rng.choice([("met", "B-PER"), ("in", "B-LOC"), ("and", "O")])
                tokens += [rng.choice(["x", "y", "the"]), cue, rng.choice(TINY_WORDS[8:16])]
                tags += ["O", "O", entity]
            rows.append((tokens, tags))
        pd.DataFrame({"tokens": [r[0] for r in rows], "tags": [r[1] for r in rows]}).to_csv(
            directory / f"{split}.csv", index=False)
    return directory


def _write_classifier_data(directory: Path) -> Path:
    """train/dev/test.tsv (doc, id, label, left, mention, right) with 37, 13 and 11 examples."""
    rng = random.Random(1)
    cues = {"per": ("met", ["alice", "bob"]), "loc": ("in", ["paris", "rome"]), "out": ("and", ["x", "the"])}
    directory.mkdir(parents=True)
    for split, count in (("train", 37), ("dev", 13), ("test", 11)):
        lines = []
        for i in range(count):
            label = rng.choice(sorted(cues))
            cue, mentions = cues[label]
            lines.append("\t".join([f"d{i // 3}", f"a{i}", label, f"{rng.choice(['x', 'y'])} {cue}",
                                    rng.choice(mentions), rng.choice(["and", "the", "."])]))
        (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def run_script_on_workers(script_args: Sequence[str], out_flag: str, base: Path) -> Dict[str, Tuple[int, str]]:
    """The script on 2 workers (outputs in base/worker0 and base/worker1) and, alongside, in one process
    (base/single): {"worker0", "worker1", "single"} -> (exit status, output)."""
    ports = _free_ports(2)
    names = ["worker0", "worker1", "single"]
    commands = [[sys.executable, *script_args, f"{out_flag}={base / name}",
                 "--distribution=" + ("one_device" if name == "single" else "multi_worker")] for name in names]
    scratch = base / "tmp"  # TMPDIR: where non-chief workers put their scratch checkpoints
    scratch.mkdir()
    envs = [_clean_env(TMPDIR=str(scratch), **({"TF_CONFIG": _tf_config(ports, i)} if i < 2 else {}))
            for i in range(3)]
    log_dir = base / "logs"
    log_dir.mkdir()
    return dict(zip(names, run_processes(commands, envs, log_dir)))


def _files_under(directory: Path) -> List[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir())


def _line_with(output: str, text: str) -> str:
    lines = [line for line in output.splitlines() if text in line]
    assert lines, f"no line with {text!r} in:\n{output[-3000:]}"
    return lines[0]


# ----- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint, tmp_path_factory) -> str:
    """The tiny checkpoint without dropout (runs with different replica counts must match)."""
    path = tmp_path_factory.mktemp("tiny_no_dropout") / "bert"
    shutil.copytree(tiny_checkpoint, path)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def scenario_runs(checkpoint, tmp_path_factory) -> Dict[str, Dict[str, np.ndarray]]:
    """The scenario's runs, all started together: one_device and mirrored (2 logical CPUs) in one
    subprocess, worker0 and worker1 (MultiWorkerMirroredStrategy over TF_CONFIG) in two more."""
    out = tmp_path_factory.mktemp("scenario")
    ports = _free_ports(2)
    commands = [[sys.executable, __file__, mode, str(out), checkpoint] for mode in ("mirrored", "worker", "worker")]
    envs = [_clean_env()] + [_clean_env(TF_CONFIG=_tf_config(ports, i)) for i in range(2)]
    _assert_ok(run_processes(commands, envs, out))
    return {name: _load(out / f"{name}.npz") for name in ("one_device", "mirrored", "worker0", "worker1")}


@pytest.fixture(scope="module")
def mirrored_runs(scenario_runs) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """(one-device run, mirrored run over 2 logical CPUs)."""
    return scenario_runs["one_device"], scenario_runs["mirrored"]


@pytest.fixture(scope="module")
def worker_runs(scenario_runs) -> List[Dict[str, np.ndarray]]:
    """The runs of the 2 local workers."""
    return [scenario_runs["worker0"], scenario_runs["worker1"]]


@pytest.fixture(scope="module")
def ner_script_runs(checkpoint, tmp_path_factory) -> Tuple[Path, Dict[str, Tuple[int, str]]]:
    """run_ner.py with early stopping (patience 1 of up to 8 epochs): on 2 workers and in one process."""
    base = tmp_path_factory.mktemp("run_ner")
    data = _write_ner_data(base / "data")
    args = ["run_ner.py", NER_QUICK, f"--bert_model={checkpoint}", f"--data_path={data}", "--max_len=32", "--epochs=8",
            "--batch_size=5", "--learning_rate=5e-3", "--patience=1", "--seed=3", "--classifier_dropout=0",
            "--nobucket_by_length", "--noverbose"]
    return base, run_script_on_workers(args, "--save_model_path", base)


@pytest.fixture(scope="module")
def classifier_script_runs(checkpoint, tmp_path_factory) -> Tuple[Path, Dict[str, Tuple[int, str]]]:
    """run_classifier.py --do_train --do_eval --do_predict: on 2 workers and in one process (37 training
    examples in global batches of 6: the last one, of 1, leaves a replica empty). The workers' run is also the
    one the --horovod ranks must match (test_horovod_ranks_...)."""
    base = tmp_path_factory.mktemp("run_classifier")
    data = _write_classifier_data(base / "data")
    return base, run_script_on_workers(_classifier_args(checkpoint, data) + ["--train_batch_size=6"], "--output_dir",
                                       base)


def _classifier_args(checkpoint, data: Path) -> List[str]:
    """run_classifier.py's command line of the script tests, without the batch size and output folder."""
    return ["run_classifier.py", f"--bert_model={checkpoint}", f"--data_dir={data}", "--do_train", "--do_eval",
            "--do_predict", "--max_seq_length=16", "--eval_batch_size=3", "--predict_batch_size=4",
            "--learning_rate=5e-3", "--num_train_epochs=2", "--seed=1", "--classifier_dropout=0", "--noverbose"]


# ----- strategy selection and reporting (in process) ------------------------------------------------------------

@pytest.mark.parametrize("env", [{}, {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}])
def test_multi_worker_without_a_cluster_is_an_input_error(monkeypatch, env):
    from bert_tf.distribution import make_strategy
    from bert_tf.errors import InputError

    for key in ("TF_CONFIG", "SLURM_JOB_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError, match="multi_worker needs a SLURM allocation with several tasks or TF_CONFIG"):
        make_strategy("multi_worker")


@pytest.mark.parametrize("tf_config,message", [
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "no \"task\""),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "index 1 is outside"),
])
def test_a_broken_tf_config_is_an_input_error(monkeypatch, tf_config, message):
    from bert_tf.distribution import make_strategy
    from bert_tf.errors import InputError

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=message):
        make_strategy("multi_worker")


@pytest.mark.parametrize("batch,replicas,expected", [
    (8, 2, "global 8 = 2 replica(s) x 4"),
    (5, 2, "global 5 over 2 replica(s): up to 3 per replica (3+2)"),
    (1, 2, "global 1 over 2 replica(s): up to 1 per replica (1+0)"),
    (16, 1, "global 16 = 1 replica(s) x 16"),
])
def test_describe_batch_gives_the_rows_per_replica(batch, replicas, expected):
    from types import SimpleNamespace

    from bert_tf.distribution import RunContext

    run = RunContext(SimpleNamespace(num_replicas_in_sync=replicas), "float32", False)
    assert run.describe_batch(batch) == expected


def test_input_order_puts_rows_back_in_order_once():
    from bert_tf.classifier.inference import InputOrder

    emitted: List[np.ndarray] = []
    order = InputOrder(6, lambda rows: emitted.append(rows["value"]))
    for index in ([0, 1], [4, 2], [2, 3, 1], [], [5, 4]):  # early, repeated, empty, late
        order.add(np.array(index), {"value": np.array(index) * 10})
    order.finish()
    assert np.concatenate(emitted).tolist() == [0, 10, 20, 30, 40, 50]
    assert order.duplicates == 3


def test_input_order_reports_a_missing_row():
    from bert_tf.classifier.inference import InputOrder

    order = InputOrder(3, lambda rows: None)
    order.add(np.array([0, 2]), {"value": np.zeros(2)})
    with pytest.raises(RuntimeError, match="2 of 3 examples .position 1 is missing"):
        order.finish()


# ----- mirrored over 2 logical CPUs --------------------------------------------------------------------------

def test_mirrored_splits_batches_unevenly_and_leaves_a_replica_empty(mirrored_runs):
    from bert_tf.distribution import replica_batch_sizes

    one, mirrored = mirrored_runs
    assert int(one["replicas"]) == 1 and int(mirrored["replicas"]) == 2
    assert mirrored["replica_rows"].tolist() == [replica_batch_sizes(b, 2) for b in GLOBAL_BATCHES] == [
        [2, 2], [2, 1], [1, 0]]


def test_mirrored_training_matches_one_device(mirrored_runs):
    one, mirrored = mirrored_runs
    assert _max_weight_diff(one, mirrored) < WEIGHT_ATOL
    assert float(one["weights_moved"]) > 100 * WEIGHT_ATOL  # the tolerance is far below what training changes


def test_mirrored_outputs_count_every_example_once_in_order(mirrored_runs):
    one, mirrored = mirrored_runs
    rows = sum(GLOBAL_BATCHES)
    assert mirrored["train_row_id"].tolist() == list(range(rows)) * EPOCHS
    assert mirrored["predict_row_id"].tolist() == list(range(rows))
    assert int(mirrored["ner_windows"]) % 2 == 1
    assert sorted(mirrored["ner_rows_seen"].tolist()) == list(range(int(mirrored["ner_windows"])))
    assert mirrored["ner_words"].tolist() == list(NER_DOC_LENGTHS)
    for batch_size in CLASSIFIER_BATCHES:
        assert mirrored[f"clf_gathered_index_{batch_size}"].tolist() == list(range(CLASSIFIER_EXAMPLES))
    _same_outputs(mirrored, one)


# ----- 2 local workers ---------------------------------------------------------------------------------------

def test_no_pipeline_autotunes_under_any_strategy(scenario_runs):
    """TF autotunes the per-device pipelines of a distributed dataset by default, and in TF 2.21 deleting
    an autotuned iterator can wait up to a minute (Trainer.distribute): ours and TF's are all untuned."""
    for name, pipelines in (("one_device", 1), ("mirrored", 2), ("worker0", 1), ("worker1", 1)):
        run = scenario_runs[name]
        assert run["pipelines_autotuned"].tolist() == [0] * pipelines, name
        if name != "one_device":
            assert run["pipelines_autotuned_by_tf"].tolist() == [1] * pipelines, name


def test_workers_match_one_device_and_each_other(worker_runs, mirrored_runs):
    one, _ = mirrored_runs
    for run in worker_runs:
        assert int(run["replicas"]) == 2
        assert _max_weight_diff(one, run) < WEIGHT_ATOL
        _same_outputs(run, one)
    assert _max_weight_diff(*worker_runs) == 0.0


def test_workers_gather_every_example_once_in_input_order(worker_runs):
    for run in worker_runs:
        assert run["train_row_id"].tolist() == list(range(sum(GLOBAL_BATCHES))) * EPOCHS
        assert run["predict_row_id"].tolist() == list(range(sum(GLOBAL_BATCHES)))
        assert sorted(run["ner_rows_seen"].tolist()) == list(range(int(run["ner_windows"])))
        for batch_size in CLASSIFIER_BATCHES:
            # no reordering needed on the host: the gathered order is the input order
            assert run[f"clf_gathered_index_{batch_size}"].tolist() == list(range(CLASSIFIER_EXAMPLES))



# ----- the scripts on 2 local workers ------------------------------------------------------------------------

def _without_event_ids(names: Sequence[str]) -> set:
    """File names with TensorBoard event files' time stamp, host and process id removed."""
    return {re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents", name) for name in names}


def _check_chief_only_writes(base: Path, runs: Dict[str, Tuple[int, str]], expected: Sequence[str]) -> None:
    _assert_ok(list(runs.values()))
    chief_files = _files_under(base / "worker0")
    assert set(expected) <= set(chief_files), chief_files
    assert _without_event_ids(_files_under(base / "single")) == _without_event_ids(chief_files)
    assert not (base / "worker1").exists() or _files_under(base / "worker1") == []  # at most the empty folder
    for name, role in (("worker0", "worker 0, the chief"), ("worker1", "worker 1, not the chief")):
        assert "MultiWorkerMirroredStrategy with 2 replica(s) over 2 worker(s) (this is " + role in runs[name][1]
    assert "OneDeviceStrategy with 1 replica(s); CPU only visible" in runs["single"][1]


def _read_csv_rows(path: Path) -> List[Dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _assert_histories_match(got: Path, want: Path, numeric: Sequence[str]) -> None:
    got_rows, want_rows = _read_csv_rows(got), _read_csv_rows(want)
    assert [(r["epoch"], r["split"]) for r in got_rows] == [(r["epoch"], r["split"]) for r in want_rows]
    for g, w in zip(got_rows, want_rows):
        for key in numeric:
            if w[key]:
                assert float(g[key]) == pytest.approx(float(w[key]), abs=OUTPUT_ATOL), (key, g, w)


def test_run_ner_on_two_workers_matches_one_process_and_stops_early_together(ner_script_runs):
    base, runs = ner_script_runs
    _check_chief_only_writes(base, runs, ["test_results.json", "test_report.txt", "history.csv", "run_config.json",
                                          "model/model.safetensors"])
    for name in ("worker0", "worker1"):
        assert "global 5 over 2 replica(s): up to 3 per replica (3+2)" in runs[name][1]
    assert "global 5 = 1 replica(s) x 5" in runs["single"][1]
    got = json.loads((base / "worker0" / "test_results.json").read_text())
    want = json.loads((base / "single" / "test_results.json").read_text())
    for key in ("loss", "accuracy", "precision", "recall", "f1", "best_validation_f1", "best_validation_epoch"):
        assert got[key] == pytest.approx(want[key], abs=OUTPUT_ATOL), key
    _assert_histories_match(base / "worker0" / "history.csv", base / "single" / "history.csv",
                            ("loss", "accuracy", "f1", "learning_rate"))
    epochs_run = max(float(r["epoch"]) for r in _read_csv_rows(base / "single" / "history.csv"))
    assert epochs_run < 8  # early stopping happened, at the same epoch on every worker:
    best = [_line_with(runs[name][1], "best validation F1") for name in ("worker0", "worker1", "single")]
    assert len({line.split("; ", 1)[1] for line in best}) == 1, best


def test_run_classifier_on_two_workers_matches_one_process(classifier_script_runs):
    base, runs = classifier_script_runs
    _check_chief_only_writes(base, runs, ["eval_results.json", "test_results.tsv", "output_with_probabilities.tsv",
                                          "history.csv", "model/model.safetensors"])
    got = json.loads((base / "worker0" / "eval_results.json").read_text())
    want = json.loads((base / "single" / "eval_results.json").read_text())
    assert got["num_examples"] == want["num_examples"] == 13
    for key in ("loss", "accuracy"):
        assert got[key] == pytest.approx(want[key], abs=OUTPUT_ATOL), key
    assert got["confusion_matrix"] == want["confusion_matrix"]
    _assert_histories_match(base / "worker0" / "history.csv", base / "single" / "history.csv", ("loss", "accuracy"))
    got_probs = np.loadtxt(base / "worker0" / "test_results.tsv", ndmin=2)
    want_probs = np.loadtxt(base / "single" / "test_results.tsv", ndmin=2)
    assert got_probs.shape == want_probs.shape == (11, 3)
    np.testing.assert_allclose(got_probs, want_probs, rtol=0, atol=OUTPUT_ATOL)
    got_lines = (base / "worker0" / "output_with_probabilities.tsv").read_text().splitlines()
    want_lines = (base / "single" / "output_with_probabilities.tsv").read_text().splitlines()
    assert [line.split("\t")[:7] for line in got_lines] == [line.split("\t")[:7] for line in want_lines]

def test_a_multi_worker_run_killed_by_sigkill_resumes_on_both_workers(checkpoint, classifier_script_runs):
    """kill -9 to both workers of the 2-worker run_classifier.py run above (TF_CONFIG, global batch 6, without
    --deterministic) once the chief's first resume checkpoint is on disk; the same command on both workers then
    resumes from it (its step and data position: tests/killing.py says what proves it, a restart would start at
    step 1) and ends as the uninterrupted run did."""
    from killing import assert_resumed, event_files, kill_all_after_first_checkpoint

    base, runs = classifier_script_runs
    out, scratch = base / "resumed", base / "tmp_resumed"
    scratch.mkdir()
    command = [sys.executable, *_classifier_args(checkpoint, base / "data"), "--train_batch_size=6", "--verbose",
               "--save_checkpoints_steps=2", "--log_every=1", "--distribution=multi_worker", f"--output_dir={out}"]

    def worker_envs() -> List[Dict[str, str]]:
        ports = _free_ports(2)
        return [_clean_env(TMPDIR=str(scratch), TF_CONFIG=_tf_config(ports, i)) for i in range(2)]

    state = kill_all_after_first_checkpoint([command] * 2, worker_envs(), out)
    events = event_files(out)
    (base / "logs_resumed").mkdir()
    resumed = run_processes([command] * 2, worker_envs(), base / "logs_resumed")
    _assert_ok(resumed)
    assert_resumed(resumed[0][1], state, out, events, int(37 / 6 * 2))  # 37 rows, batches of 6, 2 epochs
    assert f"resuming from {out / 'checkpoints' / ('ckpt-' + str(state['global_step']))} " in resumed[1][1]
    assert not (out / "checkpoints").exists()
    got = json.loads((out / "eval_results.json").read_text())
    want = json.loads((base / "worker0" / "eval_results.json").read_text())
    assert got["num_examples"] == want["num_examples"] == 13 and got["confusion_matrix"] == want["confusion_matrix"]
    for key in ("loss", "accuracy"):
        assert got[key] == pytest.approx(want[key], abs=OUTPUT_ATOL), key
    np.testing.assert_allclose(np.loadtxt(out / "test_results.tsv", ndmin=2),
                               np.loadtxt(base / "worker0" / "test_results.tsv", ndmin=2), rtol=0, atol=OUTPUT_ATOL)


if __name__ == "__main__":
    _subprocess_main(*sys.argv[1:4])


# ----- --horovod under an MPI launch (Open MPI's variables, set here as mpiexec would) --------------------------

def _consecutive_free_ports(count: int) -> int:
    """A port p with p .. p+count-1 all free on 127.0.0.1."""
    for _ in range(50):
        base = _free_ports(1)[0]
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, s in enumerate(sockets):
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no consecutive free ports")


@pytest.fixture(scope="module")
def horovod_runs(checkpoint, classifier_script_runs) -> Tuple[Path, List[Tuple[int, str]],
                                                            Dict[str, Tuple[int, str]]]:
    """run_classifier.py --horovod as `mpiexec -np 2` starts it (the same command, one output folder, per-rank batch
    3), beside the same training on 2 workers launched with TF_CONFIG (global batch 6: classifier_script_runs)."""
    base, tf_config = classifier_script_runs
    args = [sys.executable, *_classifier_args(checkpoint, base / "data")]
    scratch = base / "tmp_horovod"
    scratch.mkdir()
    (base / "logs_mpi").mkdir()
    port = _consecutive_free_ports(2)
    # As inside `sbatch --ntasks=2` (the published production launch, run under a real sbatch and mpiexec in
    # tests/test_slurm_real.py): the batch script's SLURM variables, the
    # same in every rank (SLURM_PROCID=0, no step variables), beside each rank's own MPI variables.
    mpi_env = [_clean_env(TMPDIR=str(scratch), BERT_TF_MPI_PORT=str(port), OMPI_COMM_WORLD_RANK=str(i),
                          OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_LOCAL_RANK=str(i), OMPI_COMM_WORLD_LOCAL_SIZE="2",
                          SLURM_JOB_ID="4242", SLURM_NTASKS="2", SLURM_PROCID="0", SLURM_NODELIST="localhost")
               for i in range(2)]
    mpi = run_processes([args + ["--horovod", "--train_batch_size=3", f"--output_dir={base / 'horovod'}"]] * 2,
                        mpi_env, base / "logs_mpi")
    return base, mpi, tf_config


def _saved_arrays(path: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_horovod_ranks_train_as_the_same_two_workers_launched_with_tf_config(horovod_runs):
    base, mpi, tf_config = horovod_runs
    _assert_ok(mpi + [tf_config["worker0"], tf_config["worker1"]])
    for rank, (_, output) in enumerate(mpi):
        assert "--horovod: 2 MPI ranks, --distribution=multi_worker; --train_batch_size=3 is per rank" in output
        assert f"over 2 worker(s) (this is worker {rank}" in output
        assert "global 6 = 2 replica(s) x 3" in output
    got = _saved_arrays(base / "horovod" / "model" / "model.safetensors")
    want = _saved_arrays(base / "worker0" / "model" / "model.safetensors")
    assert got.keys() == want.keys() and len(got) > 10
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)
    assert _without_event_ids(_files_under(base / "horovod")) == _without_event_ids(_files_under(base / "worker0"))
