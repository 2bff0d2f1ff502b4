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
