"""Tests of scripts/run_finetuning_grid.sh, the SLURM templates and scripts/grid_report.py.

The grid script runs a fake run_classifier.py (--runner) whose scores follow from the flags:
    macro f1 = 0.8 + 0.02 * epochs + 0.001 * seed - 1000 * learning_rate
    accuracy = 0.9 + 0.001 * seed,   loss = 0.5 - 0.1 * epochs + 0.01 * seed
so the report's means and standard deviations can be worked out by hand.

SLURM here is the fake of conftest.fake_slurm_env: a partition of two 4-GPU nodes, which the one-node SLURM of
tests/test_slurm_real.py (where the grid runs on the real scheduler) cannot be.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import check_png, fake_slurm_env, write_script

REPO_ROOT = Path(__file__).resolve().parents[1]
GRID = REPO_ROOT / "scripts" / "run_finetuning_grid.sh"
REPORT = REPO_ROOT / "scripts" / "grid_report.py"
SLURM = REPO_ROOT / "scripts" / "slurm"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")

# Variables the grid script reads from the environment: kept out of the tests' environment.
GRID_SETTINGS = set("""MODELS BATCH_SIZES LEARNING_RATES EPOCHS SEEDS TASK_NAME DATA_DIR OUT_DIR CACHE_DIR
    LAUNCHER PYTHON RUNNER EXTRA_FLAGS REPLACE_SPAN GPU_FLAGS TEMPLATE MAX_QUEUED SQUEUE_CMD POLL_SECONDS SBATCH GPUS NODES
    CPUS_PER_TASK TIME_LIMIT PARTITION ACCOUNT JOB_PREFIX JOB_NAME MEM SBATCH_OPTIONS""".split())

FAKE_RUNNER = '''
import json, os, sys
flagfile = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--flagfile="))
flags = {}
for line in open(flagfile):
    line = line.strip()
    if line.startswith("--"):
        name, _, value = line[2:].partition("=")
        flags[name] = value
lr, epochs, seed = float(flags["learning_rate"]), int(flags["num_train_epochs"]), int(flags["seed"])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(flags["output_dir"] + "\\n")
if seed == int(os.environ.get("FAKE_FAIL_SEED", "-1")):
    sys.exit(3)
f1 = 0.8 + 0.02 * epochs + 0.001 * seed - 1000 * lr
results = {"loss": 0.5 - 0.1 * epochs + 0.01 * seed, "accuracy": 0.9 + 0.001 * seed, "num_examples": 10,
           "macro": {"precision": f1, "recall": f1, "f1": f1}, "micro": {"f1": f1 + 0.05}}
json.dump(results, open(os.path.join(flags["output_dir"], "eval_results.json"), "w"))
print("fake run done")
'''

SLOW_RUNNER = '''
import pathlib, signal, sys, time
flagfile = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--flagfile="))
out = pathlib.Path(flagfile).parent
def on_term(*_):
    (out / "checkpointed").write_text(" ".join(sys.argv[1:]))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
(out / "started").write_text("")
time.sleep(60)
'''

@pytest.fixture
def env(tmp_path) -> Dict[str, str]:
    """Environment with fake sbatch/squeue/scontrol first on PATH and a state directory."""
    (tmp_path / "data").mkdir()
    write_script(tmp_path / "fake_runner.py", FAKE_RUNNER)
    environment = {k: v for k, v in fake_slurm_env(tmp_path).items() if k not in GRID_SETTINGS}
    environment.update(FAKE_LOG=str(tmp_path / "calls.log"))
    return environment


def run_grid(tmp_path: Path, env: Dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the grid script with the fake runner, data and output directories of tmp_path."""
    command = ["bash", str(GRID), f"--python={sys.executable}", f"--runner={tmp_path / 'fake_runner.py'}",
               f"--data_dir={tmp_path / 'data'}", f"--out_dir={tmp_path / 'runs'}", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def read_flags(run_dir: Path) -> List[str]:
    """The flag lines of a run.flags file (comments dropped)."""
    return [line for line in (run_dir / "run.flags").read_text().splitlines() if not line.startswith("#")]


def calls(tmp_path: Path) -> List[str]:
    """Output directories the fake runner was started for, in order."""
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def run_report(*args: str) -> subprocess.CompletedProcess:
    """Run scripts/grid_report.py."""
    return subprocess.run([sys.executable, str(REPORT), *args], capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- local launcher


def write_config(tmp_path: Path) -> Path:
    """A config file for a 2 x 2 grid; EPOCHS is overridden on the command line."""
    config = tmp_path / "grid.conf"
    config.write_text(f'MODELS="tiny:{tmp_path}/model:128"\nBATCH_SIZES="16"\n'
                      'LEARNING_RATES="2e-5 1e-5"\nEPOCHS="9"\nSEEDS="1 2"\n')
    (tmp_path / "model").mkdir()
    return config


def test_local_grid_runs_skips_finished_and_reports(tmp_path, env):
    config = write_config(tmp_path)
    env["EXTRA_FLAGS"] = "--warmup_proportion=0.1"  # from the environment
    result = run_grid(tmp_path, env, "--config", str(config), "--epochs", "2 3", "--launcher=local", "--gpu_flags=none")
    runs = tmp_path / "runs"
    run_dirs = sorted(p.parent for p in runs.glob("tiny/*/rep*/run.flags"))
    assert [str(p.relative_to(runs)) for p in run_dirs] == [
        f"tiny/bs16_lr{lr}_ep{ep}/rep{rep}" for lr in ("1e-5", "2e-5") for ep in (2, 3) for rep in (1, 2)]
    assert len(calls(tmp_path)) == 8
    assert "8 ran" in result.stdout
    run_dir = runs / "tiny" / "bs16_lr2e-5_ep3" / "rep2"
    assert read_flags(run_dir) == [
        "--task_name=consensus", f"--data_dir={tmp_path / 'data'}", f"--output_dir={run_dir}",
        f"--bert_model={tmp_path / 'model'}", "--max_seq_length=128", "--train_batch_size=16",
        "--learning_rate=2e-5", "--num_train_epochs=3", "--seed=2", "--do_train", "--do_eval",
        "--replace_span=[unused1]", f"--cache_dir={runs / 'feature_cache'}", "--warmup_proportion=0.1"]
    assert "fake run done" in (run_dir / "run.log").read_text()
    # 0.8 + 0.06 + 0.002 - 0.02
    assert json.loads((run_dir / "eval_results.json").read_text())["macro"]["f1"] == pytest.approx(0.842)

    again = run_grid(tmp_path, env, "--config", str(config), "--epochs", "2 3")
    assert len(calls(tmp_path)) == 8  # nothing ran again
    assert "8 finished (skipped)" in again.stdout and "0 ran" in again.stdout

    check_report(runs, tmp_path / "report" / "grid")


def check_report(runs: Path, prefix: Path) -> None:
    """grid_report on the 2 x 2 x 2 grid of the local test."""
    result = run_report(str(runs), "--out", str(prefix), "--metric=macro.f1")
    assert result.returncode == 0, result.stderr
    # Means over seeds 1, 2 (0.001 * seed adds 0.0015): lr 1e-5 ep 3: 0.85 + 0.0015; lr 2e-5 ep 3: 0.84 + ...;
    # lr 1e-5 ep 2: 0.83 + ...; lr 2e-5 ep 2: 0.82 + .... Std of (x, x + 0.001) = 0.001 / sqrt(2) = 0.000707.
    rows = list(csv.DictReader(prefix.with_suffix(".csv").open()))
    assert [(r["learning_rate"], r["num_train_epochs"], r["macro.f1_mean"]) for r in rows] == [
        ("1e-5", "3", "0.851500"), ("2e-5", "3", "0.841500"), ("1e-5", "2", "0.831500"), ("2e-5", "2", "0.821500")]
    best = rows[0]
    assert (best["rank"], best["model"], best["max_seq_length"], best["train_batch_size"]) == ("1", "tiny", "128", "16")
    assert (best["n"], best["seeds"], best["macro.f1_std"]) == ("2", "1 2", "0.000707")
    # accuracy (0.901 + 0.902) / 2; loss for 3 epochs (0.21 + 0.22) / 2, for 2 epochs (0.31 + 0.32) / 2
    assert (best["accuracy_mean"], best["loss_mean"], rows[2]["loss_mean"]) == ("0.901500", "0.215000", "0.315000")
    markdown = prefix.with_suffix(".md").read_text()
    assert result.stdout == markdown
    assert markdown.splitlines()[2] == "| 1 | tiny | 128 | 16 | 1e-5 | 3 | 0.8515 ± 0.0007 | 0.9015 | 0.8515 | 0.2150 | 2 |"
    assert "Failed runs" not in markdown and "± is the sample standard deviation (n - 1)" in markdown
    published = run_report(str(runs), "--out", str(prefix) + "_population", "--metric=macro.f1", "--std=population")
    rows = list(csv.DictReader(Path(str(prefix) + "_population.csv").open()))
    assert rows[0]["macro.f1_std"] == "0.000500" and "as the published get_stat.py (np.std)" in published.stdout
    png = Path(str(prefix) + "_heatmap.png")
    check_png(png)


def test_local_failure_goes_on_and_exits_1(tmp_path, env):
    config = write_config(tmp_path)
    env["FAKE_FAIL_SEED"] = "2"
    result = run_grid(tmp_path, env, "--config", str(config), "--epochs", "2", check=False)
    assert result.returncode == 1
    assert len(calls(tmp_path)) == 4  # the failures did not stop the grid
    assert "2 ran, 0 submitted, 2 failed" in result.stdout
    assert result.stderr.count("FAILED (exit 3)") == 2


def test_dry_run_writes_nothing(tmp_path, env):
    config = write_config(tmp_path)
    result = run_grid(tmp_path, env, "--config", str(config), "--dry_run")
    assert result.stdout.count("[dry run] local") == 4  # 2 rates x 1 epoch setting (9) x 2 seeds
    assert "--num_train_epochs=9" in result.stdout
    assert not (tmp_path / "runs").exists() and calls(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--launcher=cloud"], "--launcher must be local or slurm"),
    (["--models", "tiny:/m"], "model 'tiny:/m' is not name:path:max_seq_length"),
    (["--bogus=1"], "unknown option --bogus"),
    (["--max_queued", "x"], "--max_queued must be a whole number"),
])
def test_bad_settings_exit_2(tmp_path, env, args, message):
    result = run_grid(tmp_path, env, "--models", "tiny:/m:128", *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr


# ----------------------------------------------------------------------------- slurm launcher


def slurm_args(tmp_path: Path, *more: str) -> List[str]:
    """Grid options for 2 learning rates x 2 seeds submitted to the fake SLURM."""
    return ["--launcher=slurm", f"--models=big:{tmp_path}/model:256", "--batch_sizes=32",
            "--learning_rates=3e-5 2e-5", "--epochs=2", "--seeds=1 2", "--poll_seconds=0", *more]


def test_slurm_submits_with_resources_and_respects_queue_cap(tmp_path, env):
    state = Path(env["FAKE_STATE"])
    (state / "queued").write_text("1\n")  # one job of the user is already queued
    env["FAKE_CAP"] = "2"
    template = f"--template={SLURM / 'multi_node.sbatch'}"
    run_grid(tmp_path, env, *slurm_args(tmp_path, template, "--max_queued=2", "--gpus=4", "--nodes=2",
                                       "--time_limit=01:00:00", "--account=myacct"))
    # Before each submission the queue is polled until fewer than 2 jobs are listed; the fake
    # squeue lets one job finish each time it reports 2.
    assert (state / "squeue_log").read_text().split() == ["1", "2", "1", "2", "1", "2", "1"]
    assert (state / "queued_at_submit").read_text().split() == ["1", "1", "1", "1"]
    assert (state / "squeue_args").read_text().strip() == "-u tester -h"
    runs = tmp_path / "runs" / "big"
    run_dirs = [runs / f"bs32_lr{lr}_ep2" / f"rep{rep}" for lr in ("3e-5", "2e-5") for rep in (1, 2)]
    for job_id, run_dir in enumerate(run_dirs, start=100):
        assert (run_dir / ".submitted").read_text().strip() == str(job_id)
        check_job_script((state / f"job_{job_id}.sbatch").read_text(), run_dir)
        seed = run_dir.name[-1]
        assert f"--seed={seed}" in read_flags(run_dir) and "--max_seq_length=256" in read_flags(run_dir)
        flags = set(read_flags(run_dir))  # GPU jobs: XLA, a float32 model as the published grid
        assert {"--replace_span=[unused1]", "--use_xla"} <= flags and "--use_amp" not in flags
    assert calls(tmp_path) == []  # nothing ran here


def check_job_script(text: str, run_dir: Path) -> None:
    """The rendered multi-node job script of one run."""
    lines = text.splitlines()
    for expected in ["#SBATCH --gres=gpu:4", "#SBATCH --nodes=2", "#SBATCH --time=01:00:00",
                     "#SBATCH --account=myacct", "#SBATCH --ntasks-per-node=1", "#SBATCH --requeue",
                     "#SBATCH --signal=B:TERM@300", f"#SBATCH --output={run_dir}/slurm-%j.out",
                     f"#SBATCH --error={run_dir}/slurm-%j.err", f"#SBATCH --job-name=grid_big_bs32_"
                     f"{run_dir.parent.name.split('_', 1)[1]}_{run_dir.name}", f'RUN_DIR="{run_dir}"']:
        assert expected in lines
    [srun] = [line for line in lines if line.startswith("srun ")]
    assert srun.endswith(f"{sys.executable} {run_dir.parents[3] / 'fake_runner.py'} "
                         f"--flagfile={run_dir}/run.flags --distribution=multi_worker &")
    assert not any(line.startswith("#SBATCH --partition") for line in lines)  # none given: dropped
    assert not re.search(r"@[A-Z_]+@", text) and not any(line.startswith("##DEFAULT") for line in lines)
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_slurm_skips_submitted_and_finished_runs(tmp_path, env):
    state = Path(env["FAKE_STATE"])
    run_grid(tmp_path, env, *slurm_args(tmp_path))
    first = sorted(state.glob("job_*.sbatch"))
    assert len(first) == 4
    again = run_grid(tmp_path, env, *slurm_args(tmp_path))
    assert "4 already submitted (skipped)" in again.stdout
    assert len(list(state.glob("job_*.sbatch"))) == 4
    finished = tmp_path / "runs" / "big" / "bs32_lr3e-5_ep2" / "rep1"
    (finished / "eval_results.json").write_text("{}")
    resubmitted = run_grid(tmp_path, env, *slurm_args(tmp_path, "--resubmit"))
    assert "1 finished (skipped), 0 already submitted (skipped), 0 ran, 3 submitted" in resubmitted.stdout
    assert (finished / ".submitted").read_text().strip() == "100"
    assert (tmp_path / "runs" / "big" / "bs32_lr2e-5_ep2" / "rep2" / ".submitted").read_text().strip() == "106"


def test_single_gpu_template_defaults(tmp_path, env):
    state = Path(env["FAKE_STATE"])
    run_grid(tmp_path, env, *slurm_args(tmp_path, "--learning_rates=3e-5", "--seeds=7"))
    lines = (state / "job_100.sbatch").read_text().splitlines()
    for expected in ["#SBATCH --gres=gpu:1", "#SBATCH --nodes=1", "#SBATCH --time=24:00:00",
                     "#SBATCH --cpus-per-task=8"]:
        assert expected in lines
    assert not any(line.startswith(("#SBATCH --account", "#SBATCH --partition", "#SBATCH --mem")) for line in lines)
    assert lines[-1] == 'exit "$status"'


def test_published_sbatch_options(tmp_path, env):
    """The published grid's resources: GPU type, memory, excluded nodes, one job name for its squeue -n polling."""
    state = Path(env["FAKE_STATE"])
    run_grid(tmp_path, env, *slurm_args(tmp_path, "--learning_rates=3e-5", "--seeds=7", "--gpus=v100:1",
                                       "--mem=160G", "--job_name=125k_grid",
                                       "--sbatch_options=--exclude=r04g05,r04g01 --ntasks=1"))
    text = (state / "job_100.sbatch").read_text()
    assert ("#SBATCH --job-name=125k_grid\n#SBATCH --mem=160G\n#SBATCH --exclude=r04g05,r04g01\n"
            "#SBATCH --ntasks=1\n") in text and "#SBATCH --gres=gpu:v100:1\n" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_one_node_template_uses_mirrored(tmp_path, env):
    state = Path(env["FAKE_STATE"])
    template = f"--template={SLURM / 'one_node_multi_gpu.sbatch'}"
    run_grid(tmp_path, env, *slurm_args(tmp_path, template, "--learning_rates=3e-5", "--seeds=7",
                                       "--partition=gpu"))
    text = (state / "job_100.sbatch").read_text()
    assert "#SBATCH --gres=gpu:4\n" in text and "#SBATCH --partition=gpu\n" in text
    assert "/run.flags --distribution=mirrored &\n" in text


def test_job_script_forwards_sigterm_and_requeues(tmp_path, env):
    state = Path(env["FAKE_STATE"])
    write_script(tmp_path / "fake_runner.py", SLOW_RUNNER)
    run_grid(tmp_path, env, *slurm_args(tmp_path, "--learning_rates=3e-5", "--seeds=7"))
    run_dir = tmp_path / "runs" / "big" / "bs32_lr3e-5_ep2" / "rep1"
    job = subprocess.Popen(["bash", str(state / "job_100.sbatch")], env=dict(env, SLURM_JOB_ID="77"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not (run_dir / "started").exists():  # bounded by the test's timeout (pytest-timeout)
        assert job.poll() is None, "the job ended before its run started"
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate()
    assert job.returncode == 0, output
    assert (run_dir / "checkpointed").read_text() == f"--flagfile={run_dir}/run.flags"
    assert (state / "scontrol_log").read_text().split() == ["requeue", "77"]
    assert "not finished: requeueing job 77" in output


# ----------------------------------------------------------------------------- grid_report


def load_report_module():
    """Import scripts/grid_report.py as a module."""
    spec = importlib.util.spec_from_file_location("grid_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def make_run(root: Path, model: str, lr: str, epochs: str, seed: int, results=None, raw: str = None) -> Path:
    """A run directory with run.flags and, when given, eval_results.json."""
    run_dir = root / model / f"bs32_lr{lr}_ep{epochs}" / f"rep{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "run.flags").write_text(
        f"# comment\n--bert_model=/m\n--max_seq_length=64\n--train_batch_size=32\n--learning_rate={lr}\n"
        f"--num_train_epochs={epochs}\n--seed={seed}\n--do_train\n")
    if results is not None:
        (run_dir / "eval_results.json").write_text(json.dumps(results))
    if raw is not None:
        (run_dir / "eval_results.json").write_text(raw)
    return run_dir


def test_report_lists_failed_runs_and_single_repetitions(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "m", "5e-5", "2", 1, {"macro": {"f1": 0.7}, "accuracy": 0.8, "loss": 0.4})
    make_run(runs, "m", "5e-5", "2", 2, {"macro": {"f1": 0.9}, "accuracy": 0.9, "loss": 0.2})
    make_run(runs, "m", "3e-5", "2", 1, {"macro": {"f1": 0.85}})  # no accuracy, no loss
    bad = make_run(runs, "m", "3e-5", "2", 2, raw="{not json")
    unfinished = make_run(runs, "m", "3e-5", "3", 1)
    no_metric = make_run(runs, "m", "3e-5", "3", 2, {"micro": {"f1": 0.5}})
    (runs / "feature_cache" / "x").mkdir(parents=True)
    (runs / "feature_cache" / "x" / "eval_results.json").write_text("{}")  # not a run
    result = run_report(str(runs), "--metric=macro.f1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # 3e-5/2: one run, 0.85 (no std); 5e-5/2: mean of 0.7 and 0.9 = 0.8, std = 0.2 / sqrt(2) = 0.1414
    assert lines[2] == "| 1 | m | 64 | 32 | 3e-5 | 2 | 0.8500 |  | 0.8500 |  | 1 |"
    assert lines[3] == "| 2 | m | 64 | 32 | 5e-5 | 2 | 0.8000 ± 0.1414 | 0.8500 | 0.8000 | 0.3000 | 2 |"
    assert "Failed runs (3):" in lines
    assert f"- `{bad}`: unreadable: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)" in lines
    assert f"- `{unfinished}`: no eval_results.json (unfinished or failed)" in lines
    assert f"- `{no_metric}`: eval_results.json has no number at 'macro.f1'" in lines
    rows = list(csv.DictReader((runs / "grid_report.csv").open()))
    assert (rows[0]["macro.f1_std"], rows[0]["accuracy_mean"], rows[1]["macro.f1_std"]) == ("", "", "0.141421")
    assert (runs / "grid_report_heatmap.png").exists()


def test_report_other_metric_and_minimize(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "a", "5e-5", "2", 1, {"micro": {"f1": 0.6}, "loss": 0.3})
    make_run(runs, "b", "5e-5", "2", 1, {"micro": {"f1": 0.7}, "loss": 0.5})
    report = load_report_module()
    assert report.report(str(runs), metric="micro.f1", out=str(tmp_path / "r")).splitlines()[2].startswith("| 1 | b |")
    assert report.report(str(runs), metric="loss", minimize=True, out=str(tmp_path / "r")).splitlines()[2].startswith(
        "| 1 | a |")
    assert report.lookup({"a": {"b": 2}}, "a.b") == 2.0
    assert report.lookup({"a": {"b": True}}, "a.b") is None and report.lookup({"a": 1}, "a.b") is None


def test_report_bad_directory_exits_2(tmp_path):
    result = run_report(str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing'}: no such directory"
    empty = run_report(str(tmp_path))
    assert empty.returncode == 2 and "no runs found" in empty.stderr


def test_report_ranks_by_accuracy_by_default_with_macro_f1_beside(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "m", "5e-5", "2", 1, {"macro": {"f1": 0.9}, "accuracy": 0.80})
    make_run(runs, "m", "3e-5", "2", 1, {"macro": {"f1": 0.7}, "accuracy": 0.95})  # the published 94.93 is accuracy
    result = run_report(str(runs))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "accuracy (mean ± std) | accuracy | macro F1 |" in lines[0]
    assert lines[2] == "| 1 | m | 64 | 32 | 3e-5 | 2 | 0.9500 | 0.9500 | 0.7000 |  | 1 |"
    assert lines[3] == "| 2 | m | 64 | 32 | 5e-5 | 2 | 0.8000 | 0.8000 | 0.9000 |  | 1 |"
    by_macro = run_report(str(runs), "--metric=macro.f1").stdout.splitlines()
    assert by_macro[2].startswith("| 1 | m | 64 | 32 | 5e-5 |")
