"""Kill anywhere: a run stopped by SIGKILL or SIGTERM in any phase, then the same command, ends with the results of
an uninterrupted run (bitwise weights, equal result and prediction files, CPU, --deterministic).

The phase matrix of each script runs in one process (tests/fault_injection.py --matrix): a reference run, then
chains of runs into one folder, each stopped at the next phase, the last one as it is (a job preempted again and
again). Real signals to a subprocess: start-up and during the final save here; during a checkpoint write and mid-epoch
(kill -9 from the test) in test_resume.py and test_kill_resume.py. Disk full and read-only file systems: a write fails, the run
stops with one line naming the path, and the same command finishes the job.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import NER_QUICK, ROOT, TINY_WORDS, run_script
from test_resume import _weights
from test_run_ner import write_learnable_set

FAULT_INJECTION = str(ROOT / "tests" / "fault_injection.py")
DEMO = ROOT / "data" / "demo" / "consensus"
NER_FLAGS = [NER_QUICK, "--max_len=32", "--epochs=2", "--batch_size=16", "--learning_rate=5e-3", "--patience=0", "--seed=5",
             "--deterministic", "--noverbose"]
# Every phase of a NER run in the order a run meets them; @K: the K-th time in that run.
NER_KILLS = ["start-up", "train", "validation", "save", "plots", "checkpoint", "between_epochs", "validation",
             "checkpoint", "test", "report"]
NER_TERMS = ["start-up", "train", "validation", "checkpoint", "between_epochs", "test", "report"]
# The second checkpoint's write on a full disk, then report.html on a read-only file system.
DISK_FAULTS = ["enospc_at=*/checkpoints/ckpt-[0-9]@2", "erofs_at=*/report.html"]
CLASSIFIER_FLAGS = ["--do_train", "--do_eval", "--do_predict", "--max_seq_length=16", "--train_batch_size=16",
                    "--num_train_epochs=2", "--learning_rate=1e-3", "--seed=2", "--deterministic", "--noverbose",
                    "--predict_batch_size=8", "--shard_id=last_field"]
CLASSIFIER_PHASES = ["start-up", "feature_cache", "train", "validation", "checkpoint", "between_epochs", "save",
                     "evaluation", "prediction@2", "prediction_written@1", "report"]


def assert_same_weights(reference: Path, out: Path) -> None:
    ref, got = _weights(reference / "model"), _weights(out / "model")
    assert ref.keys() == got.keys()
    for name in ref:
        assert np.array_equal(ref[name], got[name]), name


def assert_finished_cleanly(out: Path) -> None:
    """No owner file, no resume checkpoints, no temporaries left."""
    left = [p.name for p in out.rglob("*") if p.name.startswith(".") or p.name == "checkpoints"]
    assert left == [], left


def assert_chain_stopped_then_finished(matrix: dict, chain: str) -> None:
    """Every faulty run of the chain stopped as its signal says (SIGKILL, or 75 for SIGTERM); the last ended well."""
    assert matrix["reference"]["statuses"] == [0]
    expected = -signal.SIGKILL if chain == "chain-0" else 75
    faults, statuses = matrix[chain]["faults"], matrix[chain]["statuses"]
    assert statuses[:-1] == [expected] * len(faults), list(zip(faults, statuses))
    assert statuses[-1] == 0


def _matrix(base: Path, chains, script: str, args) -> dict:
    """Run the phase matrix (tests/fault_injection.py --matrix); its matrix.json, with the process's stderr."""
    process = run_script([FAULT_INJECTION, "--matrix", base, ",".join("+".join(c) for c in chains), script, *args],
                         timeout=1800)
    assert process.returncode == 0, process.stderr[-3000:]
    return {**json.loads((base / "matrix.json").read_text()), "stderr": process.stderr}


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> str:
    """A one-layer random BERT: tracing a step per run is most of a run's cost here."""
    from checkpoint_factory import make_random_hf_checkpoint

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + TINY_WORDS + list("abcdefghijklmnopqrstuvwxyz")
    return make_random_hf_checkpoint(str(tmp_path_factory.mktemp("one_layer")), vocab, hidden=16, layers=1, heads=2,
                                     intermediate=32, max_positions=64, seed=3)


def _kill_chain(phases, kind):
    """Faults for phases in run order: a repeated phase is the next run's first (each run continues the last)."""
    return [f"{kind}={phase}" for phase in phases]


@pytest.fixture(scope="module")
def ner_matrix(tmp_path_factory, small_checkpoint):
    base = tmp_path_factory.mktemp("ner_matrix")
    data = write_learnable_set(base / "data", sizes=(("train", 32), ("val", 8), ("test", 8)))
    chains = [_kill_chain(NER_KILLS, "kill_at"), _kill_chain(NER_TERMS, "term_at"), DISK_FAULTS]
    args = [f"--bert_model={small_checkpoint}", f"--data_path={data}", "--save_model_path={out}", *NER_FLAGS]
    return base, _matrix(base, chains, "run_ner.py", args), data


@pytest.mark.parametrize("chain", ["chain-0", "chain-1"], ids=["sigkill", "sigterm"])
def test_ner_killed_in_every_phase_finishes_as_uninterrupted(ner_matrix, chain):
    base, matrix, _ = ner_matrix
    assert_chain_stopped_then_finished(matrix, chain)
    if chain == "chain-1":
        assert "interrupted: stopped by SIGTERM at step 1; training state saved; run the same command again to " \
               "resume" in matrix["stderr"]
        assert "interrupted: stopped by SIGTERM during test; run the same command again to finish the job" \
               in matrix["stderr"]
        assert "Traceback" not in matrix["stderr"]
    ref, out = base / "reference", base / chain
    assert_same_weights(ref, out)
    assert json.loads((out / "test_results.json").read_text()) == json.loads((ref / "test_results.json").read_text())
    assert (out / "test_report.txt").read_text() == (ref / "test_report.txt").read_text()
    history = [pd.read_csv(d / "history.csv").drop(columns="seconds") for d in (ref, out)]
    assert history[0].equals(history[1])
    assert_finished_cleanly(out)


def _ner_command(checkpoint, data, out, fault=None):
    args = ["run_ner.py", f"--bert_model={checkpoint}", f"--data_path={data}", f"--save_model_path={out}", *NER_FLAGS]
    return [FAULT_INJECTION, fault, *args] if fault else args


def test_ner_real_signals_at_start_up_and_during_the_model_save(ner_matrix, small_checkpoint, tmp_path):
    """Real signals to a subprocess, one after the other into one folder, then the same command finishes (a real
    SIGKILL mid-training: test_resume.py)."""
    base, _, data = ner_matrix
    out = tmp_path / "run"
    for fault in ("term_at=start-up", "kill_at=save"):
        stopped = run_script(_ner_command(small_checkpoint, data, out, fault))
        expected = 75 if fault.startswith("term") else -signal.SIGKILL
        assert stopped.returncode == expected, (fault, stopped.stderr[-2000:])
    assert not (out / "test_results.json").exists()
    finished = run_script(_ner_command(small_checkpoint, data, out))
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_same_weights(base / "reference", out)
    assert (json.loads((out / "test_results.json").read_text())
            == json.loads((base / "reference" / "test_results.json").read_text()))
    assert_finished_cleanly(out)


@pytest.fixture(scope="module")
def classifier_matrix(tmp_path_factory, small_checkpoint):
    base = tmp_path_factory.mktemp("classifier_matrix")
    rows = {name: (DEMO / name).read_text(encoding="utf-8").splitlines(keepends=True) for name in ("train.tsv", "dev.tsv", "test.tsv")}
    data, shards = base / "data", base / "contexts"
    data.mkdir()
    shards.mkdir()
    (data / "train.tsv").write_text("".join(rows["train.tsv"][:48]), encoding="utf-8", newline="")
    (data / "dev.tsv").write_text("".join(rows["dev.tsv"][:16]), encoding="utf-8", newline="")
    for i in range(3):
        (shards / f"ggp-contexts-w100-{i:03d}.tsv").write_text("".join(rows["test.tsv"][i * 12:(i + 1) * 12]),
                                                               encoding="utf-8", newline="")
    args = [f"--bert_model={small_checkpoint}", f"--data_dir={data}", "--output_dir={out}",
            f"--labels_file={DEMO / 'labels.txt'}", f"--predict_file={shards}", *CLASSIFIER_FLAGS]
    chains = [_kill_chain(CLASSIFIER_PHASES, "kill_at"), _kill_chain(CLASSIFIER_PHASES, "term_at")]
    return base, _matrix(base, chains, "run_classifier.py", args)


def _visible_files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and p.name.startswith(("output_with_probabilities", "test_results"))}


@pytest.mark.parametrize("chain", ["chain-0", "chain-1"], ids=["sigkill", "sigterm"])
def test_classifier_killed_in_every_phase_finishes_as_uninterrupted(classifier_matrix, chain):
    base, matrix = classifier_matrix
    assert_chain_stopped_then_finished(matrix, chain)
    ref, out = base / "reference", base / chain
    assert_same_weights(ref, out)
    assert (json.loads((out / "eval_results.json").read_text())
            == json.loads((ref / "eval_results.json").read_text()))
    predictions = _visible_files(ref)
    assert len(predictions) == 6 and _visible_files(out) == predictions  # 3 shards, 2 files each
    assert_finished_cleanly(out)


def test_disk_full_and_read_only_stop_with_the_path_then_the_same_command_resumes(ner_matrix):
    """A checkpoint write on a full disk, then the report on a read-only file system: exit 4 and one line naming
    the path; the last good checkpoint stays, and the same command finishes the job."""
    base, matrix, _ = ner_matrix
    assert matrix["chain-2"]["statuses"] == [4, 4, 0]
    errors = [line for line in matrix["stderr"].splitlines() if line.startswith("error:")]
    full = [line for line in errors if "the disk is full (No space left on device)" in line]
    read_only = [line for line in errors if "the file system is read-only (Read-only file system)" in line]
    assert len(full) == 1 and f"{base}/chain-2/checkpoints/ckpt-" in full[0], errors
    assert len(read_only) == 1 and f"{base}/chain-2/report.html:" in read_only[0], errors
    assert_same_weights(base / "reference", base / "chain-2")
    assert_finished_cleanly(base / "chain-2")


def test_storage_errors_are_recognised_from_a_real_full_device():
    from bert_tf import io_utils

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OSError) as caught:
        with io_utils.naming_storage_errors("/dev/full"):
            with open("/dev/full", "w") as f:
                f.write("x")
                f.flush()
    assert io_utils.storage_errno(caught.value) == errno.ENOSPC
    assert io_utils.storage_errno(RuntimeError("... : Read-only file system")) == errno.EROFS
    assert io_utils.storage_errno(ValueError("bad value")) is None


def test_a_folder_is_continued_by_its_own_run_only(tmp_path):
    """The owner file: the same identity continues, another is refused (or taken with overwrite), a finished run's
    folder goes back to the output check, and bad input leaves nothing behind."""
    from bert_tf import lifecycle, ownership
    from bert_tf.errors import InputError

    def refuse() -> None:
        raise InputError("not empty", tmp_path / "out")

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), lifecycle.Run("x"):
        first = ownership.claim_output_dir(str(out), {"command": "x", "lr": 1}, False, lambda: None)
        (out / "partial.txt").write_text("killed here")
        raise KeyboardInterrupt  # the run stops: its owner file stays
    assert (out / ownership.OWNER_FILE).is_file()
    again = ownership.claim_output_dir(str(out), {"command": "x", "lr": 1}, False, refuse)
    assert again.resumed and not first.resumed
    with pytest.raises(InputError, match=r"unfinished run of another command or settings: lr \(1 then, 2 now\)"):
        ownership.claim_output_dir(str(out), {"command": "x", "lr": 2}, False, lambda: None)
    with lifecycle.Run("x"):  # the run ends normally: its claim is finished
        assert ownership.claim_output_dir(str(out), {"command": "x", "lr": 1}, False, refuse).resumed
    assert not (out / ownership.OWNER_FILE).exists()
    with pytest.raises(InputError, match="not empty"):  # a finished run's results: the usual check
        ownership.claim_output_dir(str(out), {"command": "x", "lr": 1}, False, refuse)
    with pytest.raises(InputError, match="bad"), lifecycle.Run("x"):
        fresh = ownership.claim_output_dir(str(tmp_path / "new"), {"command": "x"}, False, lambda: None)
        raise InputError("bad")
    assert not (tmp_path / "new").exists() and fresh.created


def test_the_published_no_op_flags_leave_a_run_the_same_run():
    """A requeued published command that drops --do_prepare or changes --cased continues its own run."""
    from bert_tf import config
    from bert_tf.classifier.config import ClassifierConfig

    def identity(**settings):
        return config.identity(ClassifierConfig(**settings), "run_classifier.py")

    published = identity(learning_rate=2e-5, do_prepare="true", cased="true", master=None)
    edited = identity(learning_rate=2e-5, do_prepare=None, cased="false", iterations_per_loop="1000")
    assert published == edited
    assert published != identity(learning_rate=3e-5, do_prepare="true")


def test_a_rerun_removes_temporaries_and_puts_back_a_folder_caught_mid_replacement(tmp_path):
    from bert_tf import io_utils

    (tmp_path / ".model.abcd1234.tmp").mkdir()  # the new model, maybe incomplete
    (tmp_path / ".model.abcd1234.tmp.old").mkdir()  # the old one, moved aside
    (tmp_path / ".model.abcd1234.tmp.old" / "weights").write_text("old")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".history.csv.x_y_z_12.tmp").write_text("half")
    (tmp_path / ".hidden_but_ours.json").write_text("{}")
    io_utils.clean_interrupted_writes(str(tmp_path))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        ".hidden_but_ours.json", "model", "model/weights", "sub"]


def test_blocklists_pipeline_killed_in_every_step_finishes_identically(tmp_path):
    """In this process (no TensorFlow): the pipeline stopped at each type's step and while moving its outputs into
    place, then the same command; the lists equal an uninterrupted run's."""
    from bert_tf import ownership
    from bert_tf.classifier import blocklists
    from fault_injection import SimulatedKill, install
    from test_blocklists import small_run_dir

    run_dir = small_run_dir(tmp_path / "run")
    command = ["pipeline", "--run_dir", str(run_dir)]
    assert blocklists.main(command + ["--output_dir", str(tmp_path / "reference")]) == 0
    out = tmp_path / "killed"
    for phase in ["blocklists_ggp", "blocklists_dis", "blocklists_into_place"]:
        remove = install(f"kill_at={phase}", simulated=True)
        with pytest.raises(SimulatedKill):
            blocklists.main(command + ["--output_dir", str(out)])
        remove()  # the stopped run's claim went with it (bert_tf.lifecycle); its owner file stays for the rerun
        assert (out / ownership.OWNER_FILE).is_file()
    assert blocklists.main(command + ["--output_dir", str(out)]) == 0
    reference = {p.relative_to(tmp_path / "reference"): p.read_bytes() for p in (tmp_path / "reference").rglob("*")
                 if p.is_file()}
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == reference
