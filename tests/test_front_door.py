"""The users' own commands, models and launches as they are: Hub ids, the published command lines verbatim,
the published prediction post-processing, --horovod (issue 24)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, error_lines, run_in_process

from bert_tf import distribution, hub
from bert_tf.errors import InputError
from bert_tf.ner.config import PUBLISHED_NER_MODEL

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DEMO = ROOT / "data" / "demo"


def fill_hub_cache(cache: Path, repo_id: str, model_dir: str, commit: str = COMMIT) -> Path:
    """A Hugging Face Hub cache holding `model_dir`'s files as the snapshot `commit` of `repo_id` (main)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in os.listdir(model_dir):
        if os.path.isfile(os.path.join(model_dir, name)):
            os.symlink(os.path.join(model_dir, name), snapshot / name)  # the cache links blobs the same way
    return snapshot


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory, minilm) -> str:
    """A random 2-layer BERT (hidden 32, 512 positions) with MiniLM's vocabulary and lower-casing, in Hugging Face
    layout: what these commands train and predict with (the commands, flags and files are under test here, not
    MiniLM's 22M parameters, whose training and XLA compilation were most of these tests' cost)."""
    from checkpoint_factory import make_random_hf_checkpoint

    vocab = Path(minilm, "vocab.txt").read_text(encoding="utf-8").splitlines()
    folder = make_random_hf_checkpoint(str(tmp_path_factory.mktemp("small_bert")), vocab, hidden=32, layers=2, heads=2,
                                       intermediate=64, max_positions=512, seed=4)
    shutil.copy(Path(minilm, "vocab.txt"), Path(folder, "vocab.txt"))  # byte for byte
    return folder


@pytest.fixture()
def offline_cache(tmp_path, small_bert, monkeypatch) -> Path:
    """A small BERT (small_bert) under the published NER model's id in an offline Hub cache (in this process and its
    children)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    fill_hub_cache(cache, PUBLISHED_NER_MODEL, small_bert)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def run_in(cwd: Path, args, env_extra=None, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run a command line (a list) in `cwd` with this environment (CPU only)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", distribution.LOCAL_RANK_VARIABLE)}
    env.update(PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", **(env_extra or {}))
    return subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


# ----- Hub ids ---------------------------------------------------------------------------------------------------

def test_hub_id_resolves_to_the_cached_snapshot_offline(offline_cache):
    found = hub.resolve_hub_model(PUBLISHED_NER_MODEL)
    assert found.commit == COMMIT and found.path.endswith(f"snapshots/{COMMIT}")
    assert found.record() == {"hub_id": PUBLISHED_NER_MODEL, "revision": "main", "commit": COMMIT,
                              "snapshot": found.path}
    assert hub.resolve_hub_model(PUBLISHED_NER_MODEL, revision=COMMIT).path == found.path  # pinned by commit


@pytest.mark.parametrize("repo_id,revision,expected", [
    ("TurkuNLP/not-cached", None, "not in the Hugging Face cache"),
    (PUBLISHED_NER_MODEL, "v9", "at revision v9: not a local path and not in the Hugging Face cache"),
    ("TurkuNLP/bert base", None, "not a valid Hugging Face Hub id"),
    ("TurkuNLP/a--b", None, "not a valid Hugging Face Hub id"),
])
def test_hub_ids_neither_cached_nor_valid_are_one_line_errors(offline_cache, repo_id, revision, expected):
    with pytest.raises(InputError) as caught:
        hub.resolve_hub_model(repo_id, revision)
    message = caught.value.message
    assert expected in message and "\n" not in message
    if "cache" in expected:
        assert str(offline_cache) in message and f"hf download {repo_id}" in message


def test_unreachable_hub_says_so_without_retrying(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    with pytest.raises(InputError, match="the Hub cannot be reached"):
        hub.resolve_hub_model("TurkuNLP/not-cached")


def test_workers_wait_for_the_chiefs_complete_download(offline_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online: the chief downloads, this worker waits
    repo_id = "owner/later"
    naps = []
    with pytest.raises(InputError, match="the chief worker did not download it within 10 s"):
        hub.resolve_hub_model(repo_id, chief=False, timeout=10, sleep=naps.append)
    assert naps == [5.0, 5.0]

    def chief_finishes(seconds):  # while this worker waits, the chief completes the snapshot, then its marker
        fill_hub_cache(offline_cache, repo_id, str(offline_cache / ("models--" + PUBLISHED_NER_MODEL.replace("/", "--"))
                                                     / "snapshots" / COMMIT))
        marker = Path(hub._ready_marker(repo_id, None))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(COMMIT)

    assert hub.resolve_hub_model(repo_id, chief=False, sleep=chief_finishes).commit == COMMIT


def test_preset_handles_and_paths_are_told_apart(tmp_path):
    assert hub.is_preset_handle("kaggle://keras/bert/keras/bert_base_en") and hub.is_preset_handle("bert_base_en")
    assert not hub.is_preset_handle(PUBLISHED_NER_MODEL) and not hub.is_preset_handle(str(tmp_path))
    assert hub.is_hub_id("hf://TurkuNLP/bert-base-finnish-cased-v1") and hub.hub_id_of("hf://a/b") == "a/b"
    assert not hub.is_hub_id(str(tmp_path)) and not hub.is_hub_id("./x/y") and not hub.is_hub_id("a/b/c")


def test_seed_one_readme_command_trains_the_default_hub_model_offline(tmp_path, offline_cache):
    """The published README's command, script name and path replaced; no model flag: the default Hub id."""
    data = tmp_path / "data"
    data.mkdir()
    lines = (DEMO / "ner" / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join(lines[:15]) + "\n")  # split by --val_test_size 0.1 (as published)
    command = (f"{sys.executable} {ROOT / 'run_ner.py'} --data_path ./data --save_model_path model/test_model "
               "--max_len 512 --learning_rate 5e-3 --epochs 5 --batch_size 2 --num_workers 4 --val_test_size 0.1")
    # The seed README's style for booleans, `--flag False`: false, as a value of the flag (not a leftover argument).
    process = run_in(tmp_path, command.split() + ["--verbose", "False", "--tensorboard", "False"])
    assert process.returncode == 0, process.stderr[-3000:]
    out = tmp_path / "model" / "test_model"
    config = json.loads((out / "run_config.json").read_text())
    assert config["flags"]["bert_model"] == PUBLISHED_NER_MODEL
    assert config["hub"]["commit"] == COMMIT and config["hub"]["snapshot"].startswith(str(offline_cache))
    assert f"{PUBLISHED_NER_MODEL} revision main = commit {COMMIT}" in process.stdout
    results = json.loads((out / "test_results.json").read_text())
    assert 0 <= results["f1"] <= 1 and results["num_sentences"] > 0
    assert not (out / "tensorboard").exists()


def test_unknown_hub_model_writes_nothing(tmp_path, offline_cache, capsys):
    (tmp_path / "data").mkdir()
    shutil.copy(DEMO / "ner" / "train.csv", tmp_path / "data" / "train.csv")  # the data is read before the model
    process = run_in_process(["run_ner.py", "--bert_model=TurkuNLP/missing", "--data_path=data",
                              "--save_model_path=out"], capsys, cwd=tmp_path)
    assert process.returncode == 2 and len(error_lines(process)) == 1, process.stderr[-2000:]
    assert "TurkuNLP/missing" in error_lines(process)[0] and str(offline_cache) in error_lines(process)[0]
    assert not (tmp_path / "out").exists()


# ----- --horovod under an MPI launch --------------------------------------------------------------------------

OMPI = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "BERT_TF_MPI_PORT": "31000"}


def test_an_mpi_rank_becomes_a_multi_worker_worker(monkeypatch):
    for name in ("TF_CONFIG", distribution.LOCAL_RANK_VARIABLE):  # set here, so that teardown removes what the
        monkeypatch.setenv(name, "")                              # launch sets below
        monkeypatch.delenv(name)
    launch = distribution.mpi_launch(OMPI)
    assert launch == distribution.MpiLaunch("Open MPI", 1, 2, 1, 2)
    assert distribution.mpi_launch({"PMI_RANK": "0", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0",
                                    "MPI_LOCALNRANKS": "4"}).size == 4
    assert distribution.apply_horovod_launch(True, "auto", OMPI) == ("multi_worker", 2)
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": ["127.0.0.1:31000", "127.0.0.1:31001"]},
                                                   "task": {"type": "worker", "index": 1}}
    assert os.environ[distribution.LOCAL_RANK_VARIABLE] == "1"
    assert distribution.apply_horovod_launch(True, "auto", {}) == ("one_device", 1)  # Horovod with one rank
    assert distribution.apply_horovod_launch(False, "auto", OMPI) == ("auto", 1)
    same = {k: v for k, v in OMPI.items() if k != "BERT_TF_MPI_PORT"}
    assert distribution.mpi_base_port(same) == distribution.mpi_base_port(dict(same, OMPI_COMM_WORLD_RANK="0"))


@pytest.mark.parametrize("env,expected", [
    (dict(OMPI, OMPI_COMM_WORLD_LOCAL_SIZE="1"), "across nodes (2 ranks, 1 on this node) is not supported: launch one "
                                                 "task per node with `srun"),
    (dict(OMPI, OMPI_COMM_WORLD_SIZE="two"), "launch variables are not whole numbers"),
])
def test_unsupported_mpi_launches_are_one_line_errors(tmp_path, env, expected, monkeypatch, capsys):
    for name in ("TF_CONFIG", distribution.LOCAL_RANK_VARIABLE):  # none set, and teardown removes what a launch sets
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in env.items():  # this rank's launch variables
        monkeypatch.setenv(name, value)
    process = run_in_process(["run_classifier.py", "--horovod", "--do_train", f"--data_dir={DEMO / 'consensus'}",
                              "--bert_model=unused", "--output_dir=out"], capsys, cwd=tmp_path)
    assert process.returncode == 2 and len(error_lines(process)) == 1, process.stderr[-2000:]
    assert expected in error_lines(process)[0]
    assert not (tmp_path / "out").exists()


# ----- the published classifier command lines, verbatim -------------------------------------------------------

# slurm/slurm-run-finetuning-grid.sh (the grid's one job): its python command as published, only the interpreter
# and the script name replaced (python3 run_ner_consensus.py -> "$PYTHON" "$ROOT"/run_classifier.py).
PUBLISHED_GRID = r'''
cased="true"
"$PYTHON" "$ROOT"/run_classifier.py \
    --do_prepare=true \
    --do_train=true \
    --do_eval=true \
    --do_predict=false \
    --replace_span="[unused1]" \
    --task_name=$TASK \
    --init_checkpoint=$INIT_CKPT \
    --vocab_file=$BERT_DIR/vocab.txt \
    --bert_config_file=$BERT_DIR/bert_config.json \
    --data_dir=$DATASET_DIR \
    --output_dir=$OUTPUT_DIR \
    --eval_batch_size=$BATCH_SIZE \
    --predict_batch_size=$BATCH_SIZE \
    --max_seq_length=$MAX_SEQ_LENGTH \
    --learning_rate=$LEARNING_RATE \
    --num_train_epochs=$EPOCHS \
    --cased=$cased \
    --labels_dir=$LABELS_DIR \
    --use_xla \
    --use_fp16 \
    --horovod
'''

# slurm/slurm-run-predict.sh: the python command and the post-processing after it, as published.
PUBLISHED_PREDICT = r'''
cased="true"
"$PYTHON" "$ROOT"/run_classifier.py \
    --do_prepare=true \
    --do_train=false \
    --do_eval=true \
    --do_predict=true \
    --replace_span="[unused1]" \
    --task_name=$TASK \
    --init_checkpoint=$INIT_CKPT \
    --vocab_file=$BERT_DIR/vocab.txt \
    --bert_config_file=$BERT_DIR/bert_config.json \
    --data_dir=$DATASET_DIR \
    --output_dir=$OUTPUT_DIR \
    --eval_batch_size=$BATCH_SIZE \
    --predict_batch_size=$BATCH_SIZE \
    --max_seq_length=$MAX_SEQ_LEN \
    --use_fp16 \
    --use_xla \
    --horovod \
    --cased=$cased \
    --labels_dir=$LABELS_DIR

paste <(paste ${DATASET_DIR}"/test.tsv" ${OUTPUT_DIR}"/test_output_labels.txt") ${OUTPUT_DIR}"/test_results.tsv" | awk -F'\t' '{printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t\'\{\''che'\'': %s'\,' '\''dis'\'': %s'\,' '\''ggp'\'': %s'\,' '\''org'\'': %s'\,' '\''out'\'': %s'\}'\n",$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)}' > ${OUTPUT_DIR}"/output_with_probabilities_dict.tsv"; 
#remove everything up to last - 
mkdir -p $PRED_DIR
cp ${OUTPUT_DIR}"/output_with_probabilities_dict.tsv" ${PRED_DIR}"/output_with_probabilities_"$(basename ${DATASET_DIR##*-})".tsv"
'''


def run_bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return run_in(cwd, ["bash", "-c", "set -e\n" + script], env)


def write_consensus_split(folder: Path, counts: dict) -> Path:
    """Demo consensus rows: the first `n` lines of each split file."""
    folder.mkdir(parents=True)
    for name, n in counts.items():
        lines = (DEMO / "consensus" / name).read_text().splitlines(keepends=True)
        (folder / name).write_text("".join(lines[:n]))
    return folder


@pytest.fixture(scope="module")
def published_runs(tmp_path_factory, small_bert):
    """A small BERT (small_bert) as a TF1 checkpoint, fine-tuned by the published grid command, then the published
    prediction script (command + paste/awk + cp) on a shard folder named as the published pipeline names them."""
    from test_checkpoints import write_google_dir

    base = tmp_path_factory.mktemp("published")
    bert_dir = write_google_dir(base / "models" / "biobert_v1.1_pubmed", small_bert)
    labels_dir = base / "labels"
    labels_dir.mkdir()
    (labels_dir / "labels.txt").write_text("che\ndis\nggp\norg\nout\n")
    data = write_consensus_split(base / "data", {"train.tsv": 64, "dev.tsv": 16, "test.tsv": 16})
    env = {"PYTHON": sys.executable, "ROOT": str(ROOT), "BERT_DIR": str(bert_dir), "DATASET_DIR": str(data),
           "MAX_SEQ_LENGTH": "32", "BATCH_SIZE": "8", "LEARNING_RATE": "1e-4", "EPOCHS": "1", "TASK": "consensus",
           "INIT_CKPT": str(bert_dir / "bert_model.ckpt"), "LABELS_DIR": str(labels_dir),
           "OUTPUT_DIR": str(base / "output-biobert" / "multigpu" / "1001")}
    Path(env["OUTPUT_DIR"]).mkdir(parents=True)  # the published script's mkdir -p $OUTPUT_DIR
    grid = run_bash(PUBLISHED_GRID, base, env)
    shard = write_consensus_split(base / "split-contexts" / "ggp-contexts-w100-007", {"dev.tsv": 16, "test.tsv": 24})
    predict_env = dict(env, DATASET_DIR=str(shard), MAX_SEQ_LEN="32", INIT_CKPT=env["OUTPUT_DIR"],
                       OUTPUT_DIR=str(base / "output-biobert" / "multigpu" / "1002"),
                       PRED_DIR=str(base / "run" / "ggp-predictions"))
    Path(predict_env["OUTPUT_DIR"]).mkdir(parents=True)
    predict = run_bash(PUBLISHED_PREDICT, base, predict_env) if grid.returncode == 0 else None
    return base, env, grid, predict_env, predict


def test_published_grid_command_runs_verbatim(published_runs):
    _, env, grid, _, _ = published_runs
    assert grid.returncode == 0, grid.stderr[-3000:]
    out = Path(env["OUTPUT_DIR"])
    assert (out / "model" / "bert_tf_model.json").is_file() and (out / "eval_results.json").is_file()
    for flag in ("do_prepare", "cased"):  # accepted, and said once that they do nothing
        assert sum(f"note: --{flag}=true does nothing here" in line for line in grid.stderr.splitlines()) == 1
    assert "--horovod: no MPI launch: one process" in grid.stdout
    assert "global 64 = 1 replica(s) x 64" in grid.stdout  # the published default batch (never passed)
    assert "1 per epoch" in grid.stdout  # 64 rows at batch 64


def test_published_prediction_and_post_processing_give_the_dict_file(published_runs):
    base, _, _, env, predict = published_runs
    assert predict is not None and predict.returncode == 0, (predict.stderr if predict else "")[-3000:]
    out = Path(env["OUTPUT_DIR"])
    test_rows = (Path(env["DATASET_DIR"]) / "test.tsv").read_text().splitlines()
    results = (out / "test_results.tsv").read_text().splitlines()
    labels = (out / "test_output_labels.txt").read_text().splitlines()
    assert len(results) == len(labels) == len(test_rows) == 24  # no header: one row per example
    ours = (out / "output_with_probabilities.tsv").read_text().splitlines()[1:]
    copied = Path(env["PRED_DIR"]) / "output_with_probabilities_007.tsv"
    rows = copied.read_text().splitlines()
    assert len(rows) == 24
    from bert_tf.classifier import prediction_files

    for row, test_row, mine, label in zip(rows, test_rows, ours, labels):
        cells = row.split("\t")
        assert cells[:6] == test_row.split("\t") and cells[6] == label == mine.split("\t")[6]
        probabilities = prediction_files.parse_published_dict(cells[7])
        assert list(probabilities) == ["che", "dis", "ggp", "org", "out"]
        ours_p = [float(p) for p in mine.split("\t")[7:]]  # str(float32) in both files: the same numbers
        assert list(probabilities.values()) == ours_p, (cells[7], ours_p)
    blocklists = run_in(base, [sys.executable, "-m", "bert_tf.classifier.blocklists", "pipeline",
                               "--run_dir", base / "run", "--types", "ggp"])
    assert blocklists.returncode == 0, blocklists.stderr[-3000:]
    lists = {name: (base / "run" / name).read_text(encoding="utf-8").splitlines()
             for name in ("auto_local.tsv", "auto_global.tsv")}  # each line a name, a tab and more
    assert all(len(line.split("\t")) >= 2 for lines in lists.values() for line in lines), lists
    # The same predictions in our own headed format give the same lists: the dict file is read to the same numbers.
    ours_run = base / "run_ours" / "ggp-predictions"
    ours_run.mkdir(parents=True)
    (ours_run / "output_with_probabilities_007.tsv").write_bytes((out / "output_with_probabilities.tsv").read_bytes())
    again = run_in(base, [sys.executable, "-m", "bert_tf.classifier.blocklists", "pipeline",
                          "--run_dir", base / "run_ours", "--types", "ggp"])
    assert again.returncode == 0, again.stderr[-3000:]
    for name, lines in lists.items():
        assert (base / "run_ours" / name).read_text(encoding="utf-8").splitlines() == lines, name


def test_dict_cells_from_mawk_are_read():
    """The published awk line writes `\\{'che': ...}` under mawk (Debian's awk), `{'che': ...}` under gawk."""
    from bert_tf.classifier import prediction_files

    for cell in ("{'che': 0.25, 'out': 0.75}", "\\{'che': 0.25, 'out': 0.75}"):
        assert prediction_files.parse_published_dict(cell) == {"che": 0.25, "out": 0.75}
        assert prediction_files.is_published_row(["x"] * 7 + [cell])
    with pytest.raises(ValueError):
        prediction_files.parse_published_dict("\\\\{'che': 0.25}")
