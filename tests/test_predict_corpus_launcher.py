"""scripts/predict_corpus.sh with a fake sbatch/squeue/scontrol on PATH and a fake runner: which shard groups
are submitted, throttling, the flags every job gets, SIGTERM forwarding and requeue. The GPU requests and node
lists of a real cluster are the fake's; tests/test_slurm_real.py runs the launcher as a job array on a real one-node
SLURM."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import fake_slurm_env, write_script

REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = REPO_ROOT / "scripts" / "predict_corpus.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")

FAKE_RUNNER = '''
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[0]).parent
(out / "runner_args").write_text("\\n".join(sys.argv[1:]))
def on_term(*_):
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
(out / "started").write_text("")
time.sleep(float(__import__("os").environ.get("FAKE_SLEEP", "0")))
'''


@pytest.fixture
def setup(tmp_path):
    env = fake_slurm_env(tmp_path)
    write_script(tmp_path / "runner.py", FAKE_RUNNER)
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    for i in range(3):
        (contexts / f"ggp-contexts-w100-{i:03d}.tsv").write_text("1\tT1\tggp\ta \tb\t c\n")
    return tmp_path, env


def launch(tmp_path: Path, env, *args: str) -> subprocess.CompletedProcess:
    command = ["bash", str(LAUNCHER), f"--inputs={tmp_path / 'contexts'}", f"--run_dir={tmp_path / 'run'}",
               "--type=ggp", f"--model={tmp_path / 'model'}", f"--python={sys.executable}",
               f"--runner={tmp_path / 'runner.py'}", "--poll_seconds=0", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_slurm_submits_one_job_per_pending_shard_throttled(setup):
    tmp_path, env = setup
    predictions = tmp_path / "run" / "ggp-predictions"
    predictions.mkdir(parents=True)
    for name in ("test_results_000.tsv", "output_with_probabilities_000.tsv"):  # shard 000 is done
        (predictions / name).write_text("done\n")
    (predictions / "shard_info_000.json").write_text(json.dumps({"model": str(tmp_path / "model")}))
    state = Path(env["FAKE_STATE"])
    (state / "queued").write_text("1\n")
    env["FAKE_CAP"] = "2"
    result = launch(tmp_path, env, "--launcher=slurm", "--max_queued=2", "--account=proj")
    assert result.returncode == 0, result.stderr
    assert "3 shard(s) in 3 group(s): 1 group(s) done, 2 submitted" in result.stdout
    assert (state / "queued_at_submit").read_text().split() == ["1", "1"]  # waited for a free slot each time
    jobs = tmp_path / "run" / "ggp-jobs"
    assert sorted(p.name for p in jobs.glob("group-*.submitted")) == ["group-1.submitted", "group-2.submitted"]
    flags = (jobs / "predict.flags").read_text().splitlines()
    for expected in ["--do_predict", f"--bert_model={tmp_path / 'model'}", f"--predict_file={tmp_path / 'contexts'}",
                     f"--predict_output_dir={predictions}", "--shard_id=last_field", "--max_seq_length=256",
                     "--predict_batch_size=32", "--replace_span=[unused1]", "--use_xla"]:
        assert expected in flags
    assert "--use_amp" not in flags  # the published setting: the model in float32
    script = (state / "job_101.sbatch").read_text()
    assert "#SBATCH --gres=gpu:1\n" in script and "#SBATCH --job-name=predict_ggp\n" in script
    assert "--shard_index=2 --num_shard_groups=3" in script and "#SBATCH --account=proj" in script
    assert "scontrol requeue" in script and "#SBATCH --requeue" in script

    again = launch(tmp_path, env, "--launcher=slurm")
    assert "0 submitted, 2 already submitted (skipped)" in again.stdout

    # The job script forwards SIGTERM to the run and requeues the job when the run was cut short.
    env.update(FAKE_SLEEP="30", SLURM_JOB_ID="4242")
    job = subprocess.Popen(["bash", str(jobs / "group-1.sbatch")], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not (tmp_path / "started").exists():  # bounded by the test's timeout (pytest-timeout)
        assert job.poll() is None, "the job ended before its run started"
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate()
    assert job.returncode == 143, output
    assert (state / "scontrol_log").read_text().split() == ["requeue", "4242"]
    args = (tmp_path / "runner_args").read_text().splitlines()
    assert args == [f"--flagfile={jobs / 'predict.flags'}", "--shard_index=1", "--num_shard_groups=3"]


def test_array_and_local_and_bad_options(setup):
    tmp_path, env = setup
    state = Path(env["FAKE_STATE"])
    result = launch(tmp_path, env, "--launcher=slurm", "--array", "--groups=2", "--max_queued=5")
    assert result.returncode == 0, result.stderr
    script = (state / "job_100.sbatch").read_text()
    assert "#SBATCH --array=0,1%5" in script and "--num_shard_groups=2" in script and "--shard_index" not in script
    local = launch(tmp_path, env, "--gpu_flags=none")
    assert local.returncode == 0, local.stderr
    args = (tmp_path / "runner_args").read_text().splitlines()
    flags = (tmp_path / "run" / "ggp-jobs" / "local" / "predict.flags").read_text()
    assert args == [f"--flagfile={tmp_path / 'run' / 'ggp-jobs' / 'local' / 'predict.flags'}"]
    assert "--use_xla" not in flags and f"--output_dir={tmp_path / 'run' / 'ggp-jobs' / 'local'}" in flags
    missing = launch(tmp_path, env, "--launcher=slurm", f"--inputs={tmp_path / 'nothing-*.tsv'}")
    assert missing.returncode == 2 and "no file matches this pattern" in missing.stderr
    no_model = subprocess.run(["bash", str(LAUNCHER), "--inputs=x", "--run_dir=r", "--type=ggp"],
                              capture_output=True, text=True, env=env)
    assert no_model.returncode == 2 and "no model" in no_model.stderr


def test_published_sbatch_options(setup):
    """The published prediction jobs' resources and name: GPU type, memory, excluded nodes, `predict`."""
    tmp_path, env = setup
    result = launch(tmp_path, env, "--launcher=slurm", "--groups=1", "--gres=gpu:v100:1", "--mem=160G",
                    "--exclude=r04g05,r04g01", "--job_name=predict", "--sbatch_options=--constraint=v100 --qos=q1")
    assert result.returncode == 0, result.stderr
    lines = (Path(env["FAKE_STATE"]) / "job_100.sbatch").read_text().splitlines()
    for expected in ["#SBATCH --job-name=predict", "#SBATCH --gres=gpu:v100:1", "#SBATCH --mem=160G",
                     "#SBATCH --exclude=r04g05,r04g01", "#SBATCH --constraint=v100", "#SBATCH --qos=q1"]:
        assert expected in lines


def test_slurm_refuses_shards_of_another_model(setup):
    """Done shards that another model made are never taken as done: the launch stops naming one."""
    tmp_path, env = setup
    predictions = tmp_path / "run" / "ggp-predictions"
    predictions.mkdir(parents=True)
    for name in ("test_results_001.tsv", "output_with_probabilities_001.tsv"):
        (predictions / name).write_text("done\n")
    (predictions / "shard_info_001.json").write_text(json.dumps({"model": "/models/last_release"}))
    refused = launch(tmp_path, env, "--launcher=slurm")
    assert refused.returncode == 2 and not list(Path(env["FAKE_STATE"]).glob("job_*.sbatch"))
    assert refused.stderr.strip() == (f"error: {predictions / 'output_with_probabilities_001.tsv'}: shard 001 was "
                                      f"predicted by another model (model /models/last_release, not {tmp_path / 'model'}"
                                      "); pass --overwrite_output_dir to predict every shard again")
    forced = launch(tmp_path, env, "--launcher=slurm", "--extra_flags=--overwrite_output_dir")
    assert forced.returncode == 0, forced.stderr
    assert "3 shard(s) in 3 group(s): 0 group(s) done, 3 submitted" in forced.stdout
