"""The ready-to-submit job scripts of scripts/slurm/ and the launchers' resource checks, against the fake SLURM of
conftest.fake_slurm_env: what one node cannot show. tests/test_slurm_real.py runs every script on a real one-node
SLURM (the several-nodes forms as two tasks of one node); here the #SBATCH requests of each form as written (2 nodes,
4 GPUs), the srun command of a two-node job with SIGTERM and requeue, and the launchers' checks against a partition of
GPU nodes larger than this machine."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, fake_slurm_env, write_script

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")

SLURM = ROOT / "scripts" / "slurm"
JOBS = {"ner": "run_ner.py", "classifier": "run_classifier.py", "pretraining": "run_pretraining.py"}
# Records its arguments and the SLURM variables it saw; SIGTERM ends it as a bert-tf run ends when preempted (75).
FAKE_SRUN = '''#!/bin/bash
printf '%s\\n' "$@" >"$FAKE_STATE/srun_args"
trap 'echo term >>"$FAKE_STATE/srun_signals"; exit 75' TERM
touch "$FAKE_STATE/srun_started"
for ((i = 0; i < 300; i++)); do sleep 0.1; done
'''


def sbatch_lines(path: Path) -> dict:
    """The active #SBATCH options of a job script: {"--nodes": "2", ...}."""
    options = re.findall(r"^#SBATCH (--[\w-]+)(?:=(\S*))?", path.read_text(), re.M)
    return {name: value for name, value in options}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_ready_scripts_ask_for_their_form_and_run_their_flagfile(job):
    forms = {form: SLURM / f"{job}_{form}.sbatch" for form in ("1gpu", "1node", "nodes")}
    for path in forms.values():
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, path
        lines = sbatch_lines(path)
        assert lines["--requeue"] == "" and lines["--signal"] == "B:TERM@300" and lines["--open-mode"] == "append"
        command = path.read_text().rstrip().split("\nrun_job ", 1)[1]
        assert f'"$PYTHON" {JOBS[job]} --flagfile="${{FLAGFILE:-flags/slurm_{job}.flags}}"' in command
        assert (ROOT / "flags" / f"slurm_{job}.flags").is_file()
    one_gpu, one_node, nodes = (sbatch_lines(forms[f]) for f in ("1gpu", "1node", "nodes"))
    assert (one_gpu["--nodes"], one_gpu["--ntasks"], one_gpu["--gres"]) == ("1", "1", "gpu:1")
    assert (one_node["--nodes"], one_node["--gres"]) == ("1", "gpu:4")
    mpi = "mpiexec -np \"$SLURM_NTASKS\"" in forms["1node"].read_text()
    assert mpi == (job != "ner")  # the published launches: mpiexec --horovod, one rank per GPU
    assert one_node.get("--ntasks-per-node") == ("4" if mpi else None)
    assert (nodes["--nodes"], nodes["--ntasks-per-node"], nodes["--gres"]) == ("2", "1", "gpu:4")
    assert "srun --kill-on-bad-exit=1" in forms["nodes"].read_text()


def test_two_node_job_starts_srun_workers_and_requeues_when_preempted(tmp_path):
    """classifier_nodes.sbatch as sbatch would start it on two nodes: one srun of multi-worker run_classifier.py;
    SIGTERM to the batch shell reaches the workers, their exit 75 (checkpoint written) requeues the job."""
    env = fake_slurm_env(tmp_path)
    state = Path(env["FAKE_STATE"])
    write_script(tmp_path / "bin" / "srun", FAKE_SRUN)
    submitted = subprocess.run(["sbatch", str(SLURM / "classifier_nodes.sbatch")], env=env, capture_output=True,
                               text=True, timeout=60)
    assert submitted.stdout.strip() == "Submitted batch job 100"
    env.update(SLURM_JOB_ID="100", SLURM_NNODES="2", SLURM_JOB_NODELIST="g[1-2]", SLURM_SUBMIT_DIR=str(ROOT),
               PYTHON="python3", EXTRA_FLAGS="--output_dir=runs/x --seed=3")
    job = subprocess.Popen(["bash", str(state / "job_100.sbatch")], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    for _ in range(300):
        if (state / "srun_started").exists():
            break
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 75, output
    assert (state / "srun_args").read_text().split("\n")[:-1] == [
        "--kill-on-bad-exit=1", "python3", "run_classifier.py", "--flagfile=flags/slurm_classifier.flags",
        "--distribution=multi_worker", "--output_dir=runs/x", "--seed=3"]
    assert (state / "srun_signals").read_text() == "term\n"
    assert (state / "scontrol_log").read_text() == "requeue 100\n"
    assert "stopped early (exit 75): requeueing job 100" in output


def grid(tmp_path: Path, env: dict, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "data").mkdir(exist_ok=True)
    command = ["bash", str(ROOT / "scripts" / "run_finetuning_grid.sh"), "--launcher=slurm", "--models=m:/m:16",
               "--batch_sizes=32", "--learning_rates=1e-5", "--epochs=1", "--seeds=1", f"--data_dir={tmp_path / 'data'}",
               f"--out_dir={tmp_path / 'runs'}", f"--python={sys.executable}", *options]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize("option, message", [
    ("--cpus_per_task=128", "--cpus_per_task=128: needs 128 CPUs on a node; the largest node of partition "
                            "(default) has 64 (sinfo)"),
    ("--mem=1T", "--mem=1T: needs 1048576 MB on a node; the largest node of partition (default) has 512000 MB"),
    ("--gpus=v100:8", "--gpus=v100:8: needs 8 GPUs on a node; the nodes of partition (default) have at most 4"),
    ("--nodes=3", "--nodes=3: needs 3 node(s); partition (default) has 2 that can hold one task of this job"),
])
def test_grid_checks_its_request_against_sinfo(tmp_path, option, message):
    env = fake_slurm_env(tmp_path)
    done = grid(tmp_path, env, "--template=" + str(SLURM / "multi_node.sbatch"), option)
    assert done.returncode == 2 and done.stderr.splitlines() == [f"error: {message}" + (
        "" if message.endswith("(sinfo)") else " (sinfo)")], done.stderr
    assert not (Path(env["FAKE_STATE"]) / "next_id").exists()  # nothing submitted


def test_a_refused_sbatch_is_one_line_naming_the_option(tmp_path):
    env = fake_slurm_env(tmp_path)
    write_script(tmp_path / "bin" / "sbatch", "#!/bin/bash\necho 'sbatch: error: Memory specification can not be "
                 "satisfied' >&2\necho 'sbatch: error: Batch job submission failed: Requested node configuration is "
                 "not available' >&2\nexit 1\n")
    done = grid(tmp_path, env, "--mem=160G", "--gpus=1")
    script = tmp_path / "runs" / "m" / "bs32_lr1e-5_ep1" / "rep1" / "job.sbatch"
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: sbatch refused {script}: Memory specification can not be satisfied (--mem=160G)"]


def test_predict_corpus_checks_memory_against_sinfo(tmp_path):
    env = fake_slurm_env(tmp_path)
    env["FAKE_SINFO"] = "c1 8 16000 (null)"
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "ggp-contexts-000.tsv").write_text("1\tT1\tggp\ta \tb\t c\n")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "predict_corpus.sh"), f"--inputs={contexts}",
                           f"--run_dir={tmp_path / 'run'}", "--type=ggp", f"--model={tmp_path}", "--launcher=slurm",
                           f"--python={sys.executable}", "--gres=none"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: --mem=64G: needs 65536 MB on a node; the largest node of partition "
                                        "(default) has 16000 MB (sinfo)"]
