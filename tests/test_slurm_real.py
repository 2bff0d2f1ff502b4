"""The SLURM paths on a real scheduler: the one-node SLURM of scripts/slurm_local.sh (slurmctld and slurmd on this
host; `.ci/run` starts it before `make test`). Each test submits real jobs with sbatch (srun and mpiexec run inside
them) and waits on squeue; the job's end state comes from `scontrol show job` (sacct needs a database).

All jobs are submitted at the start (module fixture `jobs`) so that they run side by side, sharing the node's CPUs
(the local partition lets jobs share them); each test then waits for its own. Where SLURM cannot start here the tests
skip with a reason that starts "real SLURM unavailable:". What one node cannot show (several nodes) stays with the
fake sbatch of tests/test_grid.py, tests/test_predict_corpus_launcher.py and test_slurm_scripts_for_several_nodes.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import numpy as np
import pytest

from conftest import ROOT
from test_distribution import _saved_arrays, _write_classifier_data
from test_pretraining import _text_corpus
from test_run_ner import write_learnable_set

SKIP = "real SLURM unavailable:"
SLURM_SCRIPTS = ROOT / "scripts" / "slurm"
# Every ready-to-submit script asks for GPUs, CPUs and memory this node lacks: the test's sbatch options take them
# back to what it has (command-line options override the script's #SBATCH lines).
CPU_ONLY = ["--gres=none", "--cpus-per-task=1", "--mem=1G", "--time=20"]
WAIT_SECONDS = 900
CLASSIFIER_FLAGS = ["--do_train", "--do_eval", "--max_seq_length=16", "--eval_batch_size=3", "--learning_rate=5e-3",
                    "--num_train_epochs=2", "--seed=1", "--classifier_dropout=0", "--noverbose", "--nocalibrate",
                    "--notensorboard"]


def slurm_problem() -> str:
    """Why no real SLURM can run jobs here ('' when one can)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return f"{SKIP} no sbatch/sinfo on PATH (scripts/slurm_local.sh up installs and starts a one-node SLURM)"
    try:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return f"{SKIP} sinfo did not answer in 60 s"
    if done.returncode != 0:
        return f"{SKIP} sinfo failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    if not {"idle", "mixed", "allocated"} & set(done.stdout.split()):
        return f"{SKIP} no node is up (sinfo: {done.stdout.split() or 'no nodes'}; scripts/slurm_local.sh up)"
    return ""


def job_env(**extra: str) -> Dict[str, str]:
    """The environment sbatch passes on to a job: this interpreter, CPU only, Open MPI allowed to run as root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI")) and k != "TF_CONFIG"}
    env.update(PYTHON=sys.executable, BERT_TF=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **extra)
    return env


def sbatch(script: Path, log: Path, options: Sequence[str], env: Dict[str, str]) -> str:
    """Submit `script` as it is, with sbatch `options` before it; the job id."""
    done = subprocess.run(["sbatch", "--parsable", f"--output={log}", *options, str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def job_state(job_id: str) -> Dict[str, str]:
    """`scontrol show job` as a dict (JobState, ExitCode, Restarts, ...); {} once SLURM has forgotten the job."""
    done = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60)
    return dict(re.findall(r"(\w+)=(\S*)", done.stdout)) if done.returncode == 0 else {}


def wait_for(job_ids: Sequence[str], timeout: float = WAIT_SECONDS) -> Dict[str, Dict[str, str]]:
    """Wait until squeue lists none of the jobs (an array job: none of its tasks); their end states."""
    ids = ",".join(job_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h", "-j", ids, "-o", "%i"], capture_output=True, text=True, timeout=60)
        gone = listed.returncode != 0 and "Invalid job id" in listed.stderr  # ended long ago: forgotten
        if gone or (listed.returncode == 0 and not listed.stdout.strip()):
            return {job_id: job_state(job_id) for job_id in job_ids}
        time.sleep(1)
    subprocess.run(["scancel", *job_ids], timeout=60)
    raise AssertionError(f"jobs {ids} still queued after {timeout} s")


def assert_completed(states: Dict[str, Dict[str, str]], logs: Sequence[Path]) -> None:
    for job_id, state in states.items():
        text = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs if p.exists())
        assert state.get("JobState") == "COMPLETED" and state.get("ExitCode") == "0:0", (job_id, state, text)


class Jobs:
    """The jobs submitted at the start, by name: id, output folder, log."""

    def __init__(self, base: Path, checkpoint: str):
        self.base, self.checkpoint = base, checkpoint
        self.ids: Dict[str, str] = {}

    def out(self, name: str) -> Path:
        return self.base / name

    def log(self, name: str) -> Path:
        return self.base / f"{name}.log"

    def submit(self, name: str, script: str, options: Sequence[str], flagfile: Path, *extra_flags: str) -> None:
        env = job_env(FLAGFILE=str(flagfile), EXTRA_FLAGS=" ".join(extra_flags))
        self.ids[name] = sbatch(SLURM_SCRIPTS / script, self.log(name), [*CPU_ONLY, *options], env)

    def wait(self, *names: str) -> Dict[str, Dict[str, str]]:
        states = wait_for([self.ids[n] for n in names])
        assert_completed(states, [self.log(n) for n in names])
        return {n: states[self.ids[n]] for n in names}


def write_flagfile(path: Path, flags: Sequence[str]) -> Path:
    path.write_text("\n".join(flags) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, tiny_checkpoint) -> Iterator[Jobs]:
    """Every ready-to-submit script of scripts/slurm/, submitted as it is with this node's resources."""
    problem = slurm_problem()
    if problem:
        pytest.skip(problem)
    base = tmp_path_factory.mktemp("slurm")
    submitted = Jobs(base, tiny_checkpoint)
    clf = write_flagfile(base / "classifier.flags", [f"--bert_model={tiny_checkpoint}",
                                                      f"--data_dir={_write_classifier_data(base / 'clf_data')}",
                                                      *CLASSIFIER_FLAGS])
    # (a) the published production launch: sbatch --ntasks=2, mpiexec -np 2 ... --horovod (3 a rank, 6 a step)
    submitted.submit("mpiexec", "classifier_1node.sbatch", ["--ntasks-per-node=2"], clf,
                     f"--output_dir={submitted.out('mpiexec')}", "--train_batch_size=3")
    # (b) two srun tasks on one node as two "nodes": --distribution=multi_worker, 6 a step
    submitted.submit("srun", "classifier_nodes.sbatch", ["--nodes=1", "--ntasks-per-node=2"], clf,
                     f"--output_dir={submitted.out('srun')}", "--train_batch_size=6")
    # (e) one process, uninterrupted and requeued (checkpoints every 2 steps; bitwise reproducible)
    for name in ("single", "requeued"):
        submitted.submit(name, "classifier_1gpu.sbatch", [], clf, f"--output_dir={submitted.out(name)}",
                         "--train_batch_size=6", "--deterministic", "--save_checkpoints_steps=2",
                         "--num_train_epochs=6", "--verbose")  # verbose: the resumed run says from where
    submitted.requeue_outcome = []
    submitted.requeuer = threading.Thread(target=requeue_after_first_checkpoint, daemon=True, args=(
        submitted.ids["requeued"], submitted.out("requeued") / "checkpoints", submitted.requeue_outcome))
    submitted.requeuer.start()
    ner = write_flagfile(base / "ner.flags", [
        f"--bert_model={tiny_checkpoint}", f"--data_path={write_learnable_set(base / 'ner_data', (('train', 24), ('val', 8), ('test', 8)))}",
        "--max_len=32", "--epochs=1", "--batch_size=8", "--learning_rate=5e-3", "--noverbose", "--notensorboard"])
    pretraining = write_flagfile(base / "pretraining.flags", [
        f"--bert_model={tiny_checkpoint}", f"--input_files={_text_corpus(base / 'text')}", "--max_seq_length=32",
        "--max_predictions_per_seq=5", "--train_batch_size=8", "--num_train_steps=4", "--num_warmup_steps=1",
        "--learning_rate=3e-3", "--eval_fraction=0.1", "--notensorboard"])
    # The NER and pretraining scripts run as they are in their one-GPU form; their one-node (mpiexec / mirrored)
    # and several-node (srun) forms are the classifier's launches above, whose commands test_slurm_scripts.py
    # checks per script (each real run of a script costs ~15 CPU-s on this machine; the suite has a time budget).
    for job, flagfile, out_flag in (("ner", ner, "--save_model_path"), ("pretraining", pretraining, "--output_dir")):
        submitted.submit(f"{job}_1gpu", f"{job}_1gpu.sbatch", [], flagfile, f"{out_flag}={submitted.out(f'{job}_1gpu')}")
    submitted.grid = start_grid(submitted)
    submitted.corpus = submit_corpus(submitted)
    yield submitted
    if submitted.grid.poll() is None:
        submitted.grid.kill()


def test_published_production_launch_mpiexec_horovod_in_sbatch(jobs):
    """sbatch --ntasks=2 running mpiexec -np 2 run_classifier.py --horovod (classifier_1node.sbatch): both ranks
    train as workers of one cluster, exactly one chief writes the outputs."""
    jobs.wait("mpiexec")
    log = jobs.log("mpiexec").read_text()
    assert log.count("--horovod: 2 MPI ranks, --distribution=multi_worker; --train_batch_size=3 is per rank") == 2
    assert log.count("global 6 = 2 replica(s) x 3") == 2
    assert "SLURM_STEP_NUM_TASKS" not in log
    roles = re.findall(r"over 2 worker\(s\) \(this is worker (\d), (the chief|not the chief)", log)
    assert sorted(roles) == [("0", "the chief"), ("1", "not the chief")], roles
    results = json.loads((jobs.out("mpiexec") / "eval_results.json").read_text())
    assert results["num_examples"] == 13
    assert (jobs.out("mpiexec") / "model" / "model.safetensors").is_file()


def test_srun_multi_worker_trains_as_the_tf_config_launch(jobs):
    """Two srun tasks (classifier_nodes.sbatch, SlurmClusterResolver) give the weights of the same run launched with
    TF_CONFIG (the cluster --horovod builds from the MPI ranks in the test above: global batch 6 in both)."""
    jobs.wait("srun", "mpiexec")
    log = jobs.log("srun").read_text()
    for task in ("0", "1"):
        assert re.search(rf"this is worker {task}, .*launch: srun step {jobs.ids['srun']}\.0: task {task} of 2", log)
    got = _saved_arrays(jobs.out("srun") / "model" / "model.safetensors")
    want = _saved_arrays(jobs.out("mpiexec") / "model" / "model.safetensors")
    assert got.keys() == want.keys() and len(got) > 10
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)
    assert json.loads((jobs.out("srun") / "eval_results.json").read_text())["num_examples"] == 13


def requeue_after_first_checkpoint(job_id: str, checkpoints: Path, outcome: List[str]) -> None:
    """Once the run of `job_id` has written its first checkpoint, `scontrol requeue` it and let it start again at
    once; appends to `outcome` what went wrong, or "requeued"."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not any(checkpoints.glob("ckpt-*")):
        state = job_state(job_id).get("JobState")
        if state not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
            outcome.append(f"job {job_id} left the queue ({state}) before a checkpoint appeared in {checkpoints}")
            return
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
    for _ in range(120):  # SLURM holds a requeued job back for two minutes (its begin time): start it now
        if job_state(job_id).get("JobState") == "PENDING":
            break
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True, timeout=60)
    outcome.append("requeued")


def test_requeued_run_resumes_and_ends_as_an_uninterrupted_one(jobs):
    """scontrol requeue after the run's first checkpoint (classifier_1gpu.sbatch): SLURM stops the job (SIGTERM),
    starts it again, the same command resumes from the checkpoint, and the weights and results equal the
    uninterrupted run's bitwise; that run learned (it beats the majority baseline)."""
    jobs.requeuer.join(WAIT_SECONDS)
    assert jobs.requeue_outcome == ["requeued"], jobs.requeue_outcome
    states = jobs.wait("requeued", "single")
    assert states["requeued"]["Restarts"] == "1"
    log = jobs.log("requeued").read_text()
    assert f"job {jobs.ids['requeued']} (restart 1)" in log, log[-3000:]
    assert "interrupted: stopped by SIGTERM at step" in log
    assert re.search(r"resuming from \S+ \(global step [1-9]", log), log[-3000:]
    got, want = (_saved_arrays(jobs.out(n) / "model" / "model.safetensors") for n in ("requeued", "single"))
    assert got.keys() == want.keys()
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    results = json.loads((jobs.out("single") / "eval_results.json").read_text())
    assert json.loads((jobs.out("requeued") / "eval_results.json").read_text()) == results
    assert results["beats_majority_baseline"] is True


@pytest.mark.parametrize("job", ["ner", "pretraining"])
def test_ready_to_submit_scripts_run_as_they_are(jobs, job):
    """<job>_1gpu.sbatch with only this node's resources finishes with the outputs of its job."""
    jobs.wait(f"{job}_1gpu")
    results = "test_results.json" if job == "ner" else "eval_results.json"
    assert (jobs.out(f"{job}_1gpu") / results).is_file(), jobs.log(f"{job}_1gpu").read_text()[-3000:]
    assert "with 1 replica(s)" in jobs.log(f"{job}_1gpu").read_text()  # one process, one device


# ----- the launchers -------------------------------------------------------------------------------------------

def run_launcher(command: List[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, env=job_env(), capture_output=True, text=True, timeout=WAIT_SECONDS)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_launchers_check_the_node_and_name_a_refused_option(jobs, tmp_path):
    """A request larger than this node (as sinfo reports it) stops the grid before anything is submitted, and a job
    sbatch itself refuses (a node feature this node lacks) is one line naming the option."""
    data = _write_classifier_data(tmp_path / "data")
    grid = ["bash", "scripts/run_finetuning_grid.sh", "--launcher=slurm", f"--models=tiny:{jobs.checkpoint}:16",
            "--batch_sizes=6", "--learning_rates=5e-3", "--epochs=1", "--seeds=1", f"--data_dir={data}",
            f"--out_dir={tmp_path / 'grid'}", "--gpus=0", "--mem=1G"]
    cpus = max(int(c) for c in subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True,
                                               timeout=60).stdout.split())
    too_many = subprocess.run(grid + [f"--cpus_per_task={cpus + 1}"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert too_many.returncode == 2 and too_many.stderr.splitlines() == [
        f"error: --cpus_per_task={cpus + 1}: needs {cpus + 1} CPUs on a node; the largest node of partition "
        f"(default) has {cpus} (sinfo)"]
    refused = subprocess.run(grid + ["--cpus_per_task=1", "--sbatch_options=--constraint=v100"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    script = next((tmp_path / "grid").glob("tiny/*/rep1/job.sbatch"))
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        f"error: sbatch refused {script}: Invalid feature specification (--constraint=v100)"]


def grid_command(jobs: Jobs, *options: str) -> List[str]:
    """The grid launcher over 2 learning rates of the tiny model, on this node's resources."""
    return ["bash", "scripts/run_finetuning_grid.sh", "--launcher=slurm", f"--models=tiny:{jobs.checkpoint}:16",
            "--batch_sizes=6", "--learning_rates=5e-3 1e-3", "--epochs=1", "--seeds=1",
            f"--data_dir={jobs.base / 'clf_data'}", f"--out_dir={jobs.out('grid')}", "--gpus=0", "--cpus_per_task=1",
            *options]


def start_grid(jobs: Jobs) -> subprocess.Popen:
    """The grid launcher, in the background (it waits for a free queue slot before each submission)."""
    name = f"grid{os.getpid()}"
    command = grid_command(jobs, f"--python={sys.executable}", "--gpu_flags=none", "--time_limit=00:20:00",
                           "--mem=1G", f"--job_name={name}", "--max_queued=1", f"--squeue_cmd=squeue -h -n {name}",
                           "--poll_seconds=1", "--extra_flags=--noverbose --nocalibrate --notensorboard")
    with open(jobs.log("grid"), "w") as log:
        return subprocess.Popen(command, cwd=ROOT, env=job_env(), stdout=log, stderr=subprocess.STDOUT, text=True)


def test_grid_launcher_on_slurm(jobs, tmp_path):
    """scripts/run_finetuning_grid.sh --launcher=slurm: two runs under one job name, at most one queued at a time
    (polled with squeue -n, as the published orchestration), each trained by its job; the report ranks them."""
    assert jobs.grid.wait(WAIT_SECONDS) == 0, jobs.log("grid").read_text()[-3000:]
    output, out, name = jobs.log("grid").read_text(), jobs.out("grid"), f"grid{os.getpid()}"
    assert "0 finished (skipped), 0 already submitted (skipped), 0 ran, 2 submitted, 0 failed" in output
    assert "jobs queued (cap 1); waiting" in output  # the second run waited for the first to leave the queue
    job_ids = [(p / ".submitted").read_text().strip() for p in sorted(out.glob("tiny/*/rep1"))]
    assert len(job_ids) == 2 and {job_state(i).get("JobName") for i in job_ids} == {name}
    assert_completed(wait_for(job_ids), list(out.glob("tiny/*/rep1/slurm-*.out")))
    assert "grid: 2 finished (skipped)" in run_launcher(grid_command(jobs)).stdout
    run_launcher([sys.executable, "scripts/grid_report.py", str(out), "--out", str(tmp_path / "report")])
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    accuracies = {row["learning_rate"]: float(row["accuracy_mean"]) for row in rows}
    for lr in ("5e-3", "1e-3"):
        got = json.loads(next(out.glob(f"tiny/bs6_lr{lr}_ep1/rep1/eval_results.json")).read_text())["accuracy"]
        assert accuracies[lr] == pytest.approx(got, abs=5e-7)


def corpus_command(jobs: Jobs, *options: str) -> List[str]:
    """Corpus prediction of 3 shards in 2 groups as one job array, with the model of the uninterrupted run."""
    return ["bash", "scripts/predict_corpus.sh", f"--inputs={jobs.out('contexts')}", f"--run_dir={jobs.out('corpus')}",
            "--type=ggp", f"--model={jobs.out('single') / 'model'}", "--launcher=slurm", "--array", "--groups=2",
            f"--python={sys.executable}", "--gres=none", "--cpus_per_task=1", "--mem=1G", "--max_seq_length=16",
            "--time_limit=00:20:00", "--gpu_flags=none", "--poll_seconds=1", *options]


def submit_corpus(jobs: Jobs) -> subprocess.CompletedProcess:
    """The corpus prediction's array, submitted now to start once the run that trains its model has ended well."""
    contexts = jobs.out("contexts")
    contexts.mkdir()
    rows = (jobs.base / "clf_data" / "test.tsv").read_text().splitlines()
    for shard in range(3):
        (contexts / f"ggp-contexts-w100-{shard:03d}.tsv").write_text("\n".join(rows[shard::3]) + "\n")
    return run_launcher(corpus_command(jobs, f"--sbatch_options=--dependency=afterok:{jobs.ids['single']}"))


def test_corpus_prediction_as_a_job_array_and_a_rerun_of_the_missing_shards(jobs):
    """scripts/predict_corpus.sh --launcher=slurm --array: one array job (started by SLURM after the training job it
    depends on), a task per shard group; after a shard's outputs are lost, the same command submits an array of
    that group only, and the outputs are whole again."""
    jobs_dir, predictions = jobs.out("corpus") / "ggp-jobs", jobs.out("corpus") / "ggp-predictions"
    assert "3 shard(s) in 2 group(s): 0 group(s) done, 1 submitted" in jobs.corpus.stdout
    script = (jobs_dir / "array.sbatch").read_text()
    assert "#SBATCH --array=0,1%300" in script and f"#SBATCH --dependency=afterok:{jobs.ids['single']}" in script
    assert_completed(wait_for([(jobs_dir / "array.submitted").read_text().strip()]), list(jobs_dir.glob("slurm-*")))
    outputs = sorted(p.name for p in predictions.glob("output_with_probabilities_*.tsv"))
    assert outputs == [f"output_with_probabilities_{i:03d}.tsv" for i in range(3)]
    kept = {p.name: p.read_text() for p in predictions.glob("*_00[0-2].tsv")}
    (predictions / "output_with_probabilities_001.tsv").unlink()  # shard 1 is group 1's
    second = run_launcher(corpus_command(jobs, "--resubmit"))
    assert "1 group(s) done, 1 submitted" in second.stdout
    assert "#SBATCH --array=1%300" in (jobs_dir / "array.sbatch").read_text()
    assert_completed(wait_for([(jobs_dir / "array.submitted").read_text().strip()]), list(jobs_dir.glob("slurm-*")))
    assert {p.name: p.read_text() for p in predictions.glob("*_00[0-2].tsv")} == kept
