"""python -m bert_tf.classifier.contexts: the published generate_prediction_inputs chain as one command.

The expected files of tests/fixtures/contexts/expected were written by the published scripts (see the README
there); scripts/compare_published_contexts.sh runs the same comparison on larger synthetic tagger runs."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from bert_tf.classifier import context_windows, contexts
from conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "contexts"
EXPECTED = sorted((FIXTURE / "expected").iterdir())


def arguments(out: Path, folder: Path = FIXTURE, *extra: str) -> List[str]:
    """The command line for the fixture's inputs (2 shards, 3 words)."""
    return ["--matches", str(folder / "all_matches.tsv"), "--entities", str(folder / "all_entities.tsv"),
            "--excluded", str(folder / "excluded_documents.txt"), "--documents", str(folder / "documents.tsv"),
            "--ranks", str(folder / "scientific_names_and_ranks.tsv"), "--output_dir", str(out),
            "--shards", "2", "--words", "3", *extra]


def copy_fixture(tmp_path: Path) -> Path:
    """A writable copy of the fixture's inputs."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for path in FIXTURE.glob("*.t*"):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def error_of(capsys, argv: List[str]) -> str:
    """The one error line of a run that must stop on bad input with status 2."""
    assert contexts.main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_fixture_gives_the_published_files(tmp_path):
    out = tmp_path / "out"
    assert contexts.main(arguments(out)) == 0
    for expected in EXPECTED:
        assert (out / expected.name).read_bytes() == expected.read_bytes(), expected.name
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in EXPECTED] + [contexts.RECORD])


def test_context_words_count_words_not_tokens_far_from_the_match():
    # 1000 words with a non-word between each: the window grows past its first 1024 characters.
    text = " - ".join(f"w{i}" for i in range(1000))
    middle = text.index("w500")
    assert context_windows.words_before(text, middle, 300) == " - ".join(f"w{i}" for i in range(200, 500)) + " -"
    assert context_windows.words_after(text, middle + 4, 2) == "- w501 - w502"
    assert context_windows.words_before(text, 0, 5) == "DOCSTART"
    assert context_windows.words_after(text, len(text), 5) == "DOCEND"
    assert context_windows.words_before("a\u00a0b\u2028 c", 6, 2) == "b c"  # Unicode whitespace separates words


def test_a_rerun_redoes_only_the_unfinished_shard(tmp_path, capsys):
    out = tmp_path / "out"
    assert contexts.main(arguments(out)) == 0
    assert not (out / contexts.SPLIT_DIR).exists()  # removed once every shard is done
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*-1.tsv")}
    (out / "ggp-contexts-w3-0.tsv").unlink()
    (out / ".org-contexts-w3-0.tsv.abcd1234.tmp").write_text("half written")
    assert contexts.main(arguments(out)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*-1.tsv")} == kept
    assert (out / "ggp-contexts-w3-0.tsv").read_bytes() == (FIXTURE / "expected" / "ggp-contexts-w3-0.tsv").read_bytes()
    assert not list(out.glob(".*.tmp"))
    assert "1 shard(s) written" in capsys.readouterr().err


def test_split_then_one_shard_a_job(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert contexts.main(arguments(out, FIXTURE, "--step", "split")) == 0
    assert contexts.main(["--output_dir", str(out), "--step", "shards", "--shard_index", "1",
                          "--num_shard_groups", "2"]) == 0
    assert sorted(p.name for p in out.glob("*.tsv")) == sorted(p.name for p in EXPECTED if p.name.endswith("-1.tsv"))
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert contexts.main(["--output_dir", str(out), "--step", "shards", "--num_shard_groups", "2"]) == 0
    for expected in EXPECTED:
        assert (out / expected.name).read_bytes() == expected.read_bytes(), expected.name


def test_other_settings_into_the_same_folder_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert contexts.main(arguments(out)) == 0
    message = error_of(capsys, arguments(out)[:-1] + ["4"])
    assert message.startswith(f"error: {out / contexts.RECORD}: ") and "words 3 (recorded) vs 4" in message
    assert contexts.main(arguments(out)[:-1] + ["4", "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("*.tsv")) == sorted(p.name.replace("w3", "w4") for p in EXPECTED)


@pytest.mark.parametrize("name, find, replace, line, problem", [
    ("all_matches.tsv", b"10\t1\t1\t0\t6\tAspirin\t-1\t1\n", b"10\t1\t1\t0\t6\n", 4, "expected 8 TAB-separated"),
    ("all_matches.tsv", b"9\t1\t1\t0\t8\tTamoxifen", b"8\t1\t1\t0\t8\tTamoxifen", 11, "document 8, which is not"),
    ("all_matches.tsv", b"10\t1\t1\t34\t38", b"10\t1\t1\t3x\t38", 9, "start '3x' is not a whole number"),
    ("documents.tsv", b"Some text", b"Some \xff text", 3, "not valid UTF-8"),
    ("documents.tsv", b"Some text", b"Some\rtext", 3, "carriage return inside"),
    ("all_entities.tsv", b"9\t-26\tDOID:162", b"9\tdisease\tDOID:162", 9, "entity type 'disease' is not"),
    ("scientific_names_and_ranks.tsv", b"Mus\tgenus", b"Mus genus", 3, "found 2 field(s)"),
])
def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path, capsys, name, find, replace, line, problem):
    folder = copy_fixture(tmp_path)
    path = folder / name
    content = path.read_bytes()
    assert find in content
    path.write_bytes(content.replace(find, replace, 1))
    out = tmp_path / "out"
    message = error_of(capsys, arguments(out, folder))
    assert message.startswith(f"error: {path}:{line}: ") and problem in message, message
    assert not out.exists()


def job_arguments(script: Path) -> List[str]:
    """The contexts command's arguments in a submitted batch script."""
    words = shlex.split(script.read_text().strip().splitlines()[-1])
    return words[words.index("bert_tf.classifier.contexts") + 1:]


def test_the_slurm_launch_runs_split_shards_and_cleanup(tmp_path, monkeypatch):
    from conftest import fake_slurm_env

    env = fake_slurm_env(tmp_path)
    out = tmp_path / "out"
    launch = subprocess.run(["bash", str(ROOT / "scripts" / "contexts.sh"), "--launcher", "slurm", "--groups", "2",
                             "--python", sys.executable, "--", *arguments(out)], env=env, capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert launch.returncode == 0, launch.stderr
    state = tmp_path / "state"
    split, shards, finish = (state / f"job_{n}.sbatch" for n in (100, 101, 102))
    assert "--dependency=afterok:100" in shards.read_text() and "--array=0-1%50" in shards.read_text()
    assert "--dependency=afterok:101" in finish.read_text()
    for script, task in [(split, None), (shards, "1"), (shards, "0"), (finish, None)]:  # in dependency order
        if task is None:
            monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
        else:
            monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        assert contexts.main(job_arguments(script)) == 0
    for expected in EXPECTED:
        assert (out / expected.name).read_bytes() == expected.read_bytes(), expected.name
    assert not (out / contexts.SPLIT_DIR).exists()


def test_the_demo_tagger_run_gives_a_context_for_every_demo_test_row(tmp_path):
    demo = ROOT / "data" / "demo"
    out = tmp_path / "out"
    assert contexts.main(arguments(out, demo / "tagger")[:-4] + ["--shards", "3"]) == 0
    rows = [line.split("\t") for line in (demo / "consensus" / "test.tsv").read_text(encoding="utf-8").splitlines()]
    written = [line.split("\t") for path in out.glob("*.tsv") for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted((r[0], r[4]) for r in written) == sorted((r[0], r[4]) for r in rows)
    assert {(r[0], r[4], r[2]) for r in rows if r[2] != "out"} <= {(r[0], r[4], r[2]) for r in written}
