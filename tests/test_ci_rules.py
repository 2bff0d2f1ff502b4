"""The suite's own rules: in CI a skip not listed in tests/allowed_skips.txt fails the run, every listed skip
names a test that exists and says why, each test has a time limit, hypothesis is derandomized in CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

from conftest import ALLOWED_SKIPS, ROOT, read_allowed_skips, unexpected_skips

PROBE = '''
import pytest

def test_skips():
    pytest.skip("no reason CI accepts")

def test_passes():
    pass
'''


def _pytest_with_our_conftest(tmp_path, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    env = dict(os.environ, CI=ci, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "conftest", "-p", "no:cacheprovider",
                           "test_probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_an_unlisted_skip_fails_ci(tmp_path):
    in_ci = _pytest_with_our_conftest(tmp_path, "true")
    assert in_ci.returncode == 1, in_ci.stdout
    assert "1 test(s) skipped that tests/allowed_skips.txt does not allow" in in_ci.stdout
    assert "test_probe.py::test_skips" in in_ci.stdout and "SKIPPED [1] test_probe.py:5: no reason CI" in in_ci.stdout
    assert "1 passed, 1 skipped" in in_ci.stdout


def test_every_allowed_skip_names_an_existing_test_and_a_reason():
    allowed = read_allowed_skips()
    assert allowed
    for pattern, reason in allowed:
        path, _, name = pattern.partition("::")
        function = re.match(r"\w*", name).group(0)  # empty: a pattern for every test of the file
        assert re.search(rf"^def {function or 'test_'}\w*\(", (ROOT / path).read_text(encoding="utf-8"), re.M), pattern
        assert len(reason.split()) >= 3, pattern
    assert unexpected_skips(["tests/test_export.py::test_hf_export_matches_transformers[token]",
                             "tests/test_export.py::test_other"], allowed) == ["tests/test_export.py::test_other"]


def test_allowed_skips_file_rejects_a_line_without_reason(tmp_path):
    import pytest

    bad = tmp_path / "allowed.txt"
    bad.write_text("# comment\ntests/test_x.py::test_y\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"allowed.txt:2: expected 'NODE_ID_PATTERN \| reason'"):
        read_allowed_skips(bad)
    assert ALLOWED_SKIPS.is_file()


def test_every_test_has_a_time_limit_and_hypothesis_is_fixed_in_ci():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert int(options["timeout"]) > 0
    assert re.search(r"^pytest-timeout==\d+\.\d+\.\d+$", (ROOT / "requirements.txt").read_text(), re.M)
    from hypothesis import settings

    assert settings.get_profile("ci").derandomize is True
    assert settings().derandomize is (os.environ.get("CI", "").lower() == "true")
    assert "-rs" in (ROOT / "Makefile").read_text(encoding="utf-8").split("test: $(STAMP)")[1].splitlines()[1]


def test_every_file_put_first_exists():
    """conftest.LONGEST_FIRST names test files that exist (a renamed file would silently fall back to its place)."""
    from conftest import LONGEST_FIRST, ROOT

    assert [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
