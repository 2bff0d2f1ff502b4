"""Every flagfile in flags/ parses with the script it is for (no unknown or malformed flag)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARSE = ("import sys\n"
         "from absl import flags\n"
         "import importlib\n"
         "importlib.import_module(sys.argv[1])\n"
         "for path in sys.argv[2:]:\n"
         "    flags.FLAGS.unparse_flags()\n"
         "    flags.FLAGS(['x', '--flagfile=' + path])\n"
         "    print('parsed', path)\n")


def flagfiles_for(script: str) -> list:
    """The flagfiles of a script: *ner* ones are run_ner.py's, the rest run_classifier.py's."""
    files = sorted((ROOT / "flags").glob("*.flags"))
    return [str(p) for p in files if ("ner" in p.name) == (script == "run_ner")]


@pytest.mark.parametrize("script", ["run_ner", "run_classifier"])
def test_flagfiles_parse(script):
    files = flagfiles_for(script)
    assert files, f"no flagfile for {script}.py"
    done = subprocess.run([sys.executable, "-c", PARSE, script, *files], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("parsed ") == len(files)
