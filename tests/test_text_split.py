"""The rule-based sentence and word splitter: offsets index the original text; abbreviations, numbers,
Finnish ordinals and punctuation split as documented."""

from __future__ import annotations

import pytest

from bert_tf.ner.sentences import split_at, split_sentences, tokenize


def words(text: str):
    return [[t.text for t in s.tokens] for s in split_sentences(text)]


def test_english_abbreviations_numbers_quotes_and_brackets() -> None:
    text = 'Dr. Smith paid 3.5 km, e.g. in the U.K. Then he left... Why?! "Yes." Next (see Fig. 2).'
    assert words(text) == [
        ["Dr.", "Smith", "paid", "3.5", "km", ",", "e.g.", "in", "the", "U.K.", "Then", "he", "left", "..."],
        ["Why", "?!"], ['"', "Yes", ".", '"'], ["Next", "(", "see", "Fig.", "2", ")", "."]]


def test_finnish_abbreviations_ordinals_dates_and_case_endings() -> None:
    text = ("Esim. Helsingissä oli 5. toukokuuta 1.000,50 euroa ks. liite. H&M:n myymälä avattiin 12.3.2020 "
            "klo 12:30. Se oli — ehkä — hyvä jne. Seuraava alkoi 12.3. ja päättyi vuonna 2020. Loppu")
    assert words(text) == [
        ["Esim.", "Helsingissä", "oli", "5.", "toukokuuta", "1.000,50", "euroa", "ks.", "liite", "."],
        ["H&M:n", "myymälä", "avattiin", "12.3.2020", "klo", "12:30", "."],
        ["Se", "oli", "—", "ehkä", "—", "hyvä", "jne."],
        ["Seuraava", "alkoi", "12.3.", "ja", "päättyi", "vuonna", "2020", "."], ["Loppu"]]


def test_hyphens_apostrophes_and_lines() -> None:
    text = "aamu-unisille COVID-19 don't n. 5 mm. kaksi\tsanaa\n\nToinen kappale\njatkuu tässä\nUusi rivi"
    assert words(text) == [["aamu-unisille", "COVID-19", "don't", "n.", "5", "mm.", "kaksi", "sanaa"],
                           ["Toinen", "kappale", "jatkuu", "tässä"], ["Uusi", "rivi"]]


@pytest.mark.parametrize("text", [
    "Äiti söi 🍕 ja 🍣\t\tkello 12.30.\r\nSitten «lainaus» [1]–[3] ...",
    "  \n ",
    "a.b.c d.e x--y ‘quoted’ 100 % $5.00 e-mail@example.com",
])
def test_every_character_is_covered_once_and_offsets_index_the_text(text: str) -> None:
    tokens = tokenize(text)
    assert all(text[t.start:t.end] == t.text for t in tokens)
    covered = "".join(t.text for t in tokens)
    assert covered == "".join(text.split())
    assert all(a.end <= b.start for a, b in zip(tokens, tokens[1:]))
    assert [t for s in split_sentences(text) for t in s.tokens] == tokens


def test_split_at() -> None:
    text = "Helsinki-based firm"
    tokens = split_at(tokenize(text), [8])
    assert [t.text for t in tokens] == ["Helsinki", "-based", "firm"]
