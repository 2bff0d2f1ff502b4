"""The user-facing text is checked against the code: docs/flags.md is what scripts/make_flags_doc.py generates,
every `--flag` named in README.md and docs/ exists, every `python run_*.py ...` command there parses with the
script's own flag definitions, every `python -m ...` module there answers --help, every `make` target exists and
every relative link resolves."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from absl import flags as absl_flags

from bert_tf import config
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.ner.config import NerConfig
from bert_tf.pretraining.config import PretrainingConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_flags_doc  # noqa: E402

SCRIPTS = {"run_ner.py": NerConfig, "run_classifier.py": ClassifierConfig, "run_pretraining.py": PretrainingConfig}
# Options of other programs the docs show (the scheduler, MPI, pip, pytest, git, ...), not ours.
OTHER_PROGRAMS = {
    "sbatch": {"array", "nodes", "ntasks", "ntasks-per-node", "gres", "gpus", "gpus-per-node", "cpus-per-task",
               "time", "mem", "partition", "account", "job-name", "output", "error", "requeue", "signal",
               "dependency", "parsable", "wrap", "export", "mail-type", "mail-user", "qos", "exclusive", "chdir"},
    "srun": {"ntasks", "nodes", "mpi", "kill-on-bad-exit"},
    "mpiexec": {"bind-to", "np", "allow-run-as-root", "oversubscribe", "hostfile", "map-by", "x"},
    # the published scripts' own options, named in the migration tables (accelerate launch, train_bert_ner.py,
    # the blocklist scripts)
    "published": {"multi_gpu", "mixed_precision", "num_processes", "gpu_ids", "cpu", "wd", "scheduler", "blacklist",
                  "global-ggp-prob"},
    "tools": {"no-deps", "upgrade", "index-url", "extra-index-url", "logdir", "local-dir", "include", "revision",
              "durations", "help", "version", "user", "quiet", "depth", "cached", "version", "flagfile", "helpfull",
              "only_check_args", "no-cache-dir", "break-system-packages", "pre", "bind_all", "port", "host"},
}


def doc_files() -> List[Path]:
    """README.md and every page of docs/."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("**/*.md"))


def code_lines(path: Path) -> Iterator[Tuple[int, str]]:
    """The code of `path` with line numbers: the logical lines of fenced and indented code blocks (backslash
    continuations joined), and each inline code span."""
    inside, pending, start = False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not (inside or line.startswith("    ")):
            yield from ((number, span) for span in re.findall(r"`([^`]+)`", line))
            pending = ""
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line.strip()
        pending = ""


@functools.lru_cache(maxsize=None)
def script_flags(script: str) -> absl_flags.FlagValues:
    """A fresh FlagValues with the flags `script` defines."""
    flag_values = absl_flags.FlagValues()
    config.define_flags(SCRIPTS[script], flag_values, module_name=script)
    return flag_values


@functools.lru_cache(maxsize=None)
def known_flags() -> Set[str]:
    """Every flag name of ours (the scripts', the shell scripts', the `python -m` commands') and of the other
    programs the docs show."""
    names = {name for script in SCRIPTS for name in script_flags(script)}
    names |= {"no" + name for script in SCRIPTS for name in script_flags(script)
              if isinstance(script_flags(script)[name], absl_flags.BooleanFlag)}
    for path in list((ROOT / "scripts").glob("**/*")) + list((ROOT / "bert_tf").glob("**/*.py")) + \
            list((ROOT / "bench").glob("*.py")):
        if path.is_file() and path.suffix in (".sh", ".py", ".sbatch", ""):
            names |= set(re.findall(r"--([a-z][a-z0-9_-]*)", path.read_text(encoding="utf-8", errors="replace")))
    for options in OTHER_PROGRAMS.values():
        names |= options
    return names


def test_flags_page_is_generated_from_the_code():
    assert make_flags_doc.main(["--check"]) == 0, "docs/flags.md is stale: run python scripts/make_flags_doc.py"


def test_every_flag_named_in_the_docs_exists():
    unknown = []
    for path in doc_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name in re.findall(r"(?<![\w/-])--([a-z][a-z0-9_-]*)", line):
                if name not in known_flags():
                    unknown.append(f"{path.relative_to(ROOT)}:{number}: --{name}")
    assert not unknown, "\n".join(unknown)


def _script_commands() -> Iterator[Tuple[str, str, List[str]]]:
    for path in doc_files():
        for number, line in code_lines(path):
            match = re.search(r"python3? (run_\w+\.py)( .*)?$", line)
            if match and match.group(1) in SCRIPTS:
                words = shlex.split((match.group(2) or "").split(" #", 1)[0].split(" && ")[0].split(" | ")[0])
                yield f"{path.relative_to(ROOT)}:{number}", match.group(1), words


def parse_failure(script: str, words: List[str]) -> str:
    """Why `script` refuses the flags among `words` ("" when it parses them)."""
    flag_values = absl_flags.FlagValues()
    config.define_flags(SCRIPTS[script], flag_values, module_name=script)
    try:
        flag_values(_with_flagfiles([script] + [w for w in words if w.startswith("-")]))
    except (absl_flags.Error, OSError) as e:
        return str(e)
    return ""


def test_every_script_command_in_the_docs_parses():
    failures = [f"{where}: {' '.join(words)}: {parse_failure(script, words)}"
                for where, script, words in _script_commands() if parse_failure(script, words)]
    assert not failures, "\n".join(failures)
    assert parse_failure("run_ner.py", ["--max_len=N"]) and parse_failure("run_ner.py", ["--no_such_flag"])


def _with_flagfiles(argv: List[str]) -> List[str]:
    """`argv` with each --flagfile=F replaced by F's flags (F relative to the repository)."""
    expanded = []
    for word in argv:
        if word.startswith("--flagfile="):
            path = ROOT / word.split("=", 1)[1]
            expanded += [line.strip() for line in path.read_text().splitlines()
                         if line.strip() and not line.lstrip().startswith("#")]
        else:
            expanded.append(word)
    return expanded


def _modules() -> Dict[str, str]:
    found: Dict[str, str] = {}
    for path in doc_files():
        for number, line in code_lines(path):
            for module in re.findall(r"python3? -m (bert_tf[\w.]*)", line):
                found.setdefault(module, f"{path.relative_to(ROOT)}:{number}")
    return found


@pytest.mark.parametrize("module", sorted(_modules()))
def test_every_module_command_in_the_docs_answers_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    text = done.stdout + done.stderr
    # argparse exits 0 after its usage; absl's --help prints the module's flags and exits 1
    answered = "usage" in text.lower() if done.returncode == 0 else "Try --helpfull" in text
    assert answered and "Traceback" not in text, (_modules()[module], done.returncode, text[-500:])


def test_every_make_target_in_the_docs_exists():
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    missing = [f"{path.relative_to(ROOT)}:{number}: make {target}" for path in doc_files()
               for number, line in code_lines(path) for target in re.findall(r"\bmake ([a-z][\w-]*)", line)
               if target not in targets]
    assert not missing, "\n".join(missing)


def test_every_relative_link_resolves():
    broken = []
    for path in doc_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                target = target.split("#", 1)[0]
                if target and not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert not broken, "\n".join(broken)
