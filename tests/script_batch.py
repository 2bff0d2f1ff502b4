"""Run one of the project's scripts on several command lines in one interpreter, so that tests of bad input,
which only read the error line, pay for one TensorFlow start instead of one each.

    python tests/script_batch.py SCRIPT CASES_JSON

CASES_JSON maps a case name to its arguments; the last line of stdout is JSON mapping each name to its
{"returncode", "stdout", "stderr"} (what the script printed through sys.stdout / sys.stderr).
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
from typing import Dict, List

from absl import flags


def run_case(script: str, main, args: List[str]) -> Dict[str, object]:
    """One command line of the script, with every flag back at its default first."""
    flags.FLAGS.unparse_flags()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(flags.FLAGS([script, *args]))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    script, cases_path = sys.argv[1], sys.argv[2]
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    sys.argv = [script]
    namespace = runpy.run_path(script, run_name="script_batch")  # defines the flags; runs nothing
    results = {name: run_case(script, namespace["main"], args) for name, args in cases.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
