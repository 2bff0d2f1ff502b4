"""bert_tf.errors: the one-line message of a library's error, whatever its message."""

from __future__ import annotations

import pytest

from bert_tf import tokenization
from bert_tf.errors import InputError, first_line


@pytest.mark.parametrize("error, expected", [
    (ValueError("bad header\ndetails follow"), "bad header"),
    (OSError("\n\n  truncated file  \nmore"), "truncated file"),
    (RuntimeError(""), "RuntimeError"),
    (Exception(), "Exception"),
    (ValueError("  \n "), "ValueError"),
])
def test_first_line(error: BaseException, expected: str) -> None:
    assert first_line(error) == expected


def test_an_empty_library_message_still_gives_the_input_error(tmp_path, monkeypatch) -> None:
    def broken(path: str):
        raise Exception()

    monkeypatch.setattr(tokenization.Tokenizer, "from_file", broken)
    path = str(tmp_path / "tokenizer.json")
    with pytest.raises(InputError) as raised:
        tokenization.WordPieceTokenizer.from_tokenizer_json(path, None)
    assert str(raised.value) == f"{path}: cannot read tokenizer (Exception)"


def test_an_entry_point_refuses_leftover_arguments_before_running(capsys) -> None:
    """What absl leaves after the flags (a mistyped `-- flag`, a stray path) stops the script: one line, exit 2."""
    from bert_tf import cli

    calls = []
    main = cli.exit_on_error(calls.append)
    with pytest.raises(SystemExit) as stopped:
        main(["run_ner.py", "data/train.csv", "--epochs=3"])
    assert stopped.value.code == 2 and calls == []
    assert capsys.readouterr().err.strip().splitlines() == ["error: unexpected arguments: data/train.csv --epochs=3"]
    main(["run_ner.py"])
    assert calls == [["run_ner.py"]]
