"""Write a synthetic dictionary tagger run with awkward cases, for comparing the prediction inputs of
`python -m bert_tf.classifier.contexts` with the published chain (scripts/compare_published_contexts.sh).

Usage: python scripts/make_tagger_cases.py --out DIR [--seed 1] [--documents 60] [--long 2]

Writes into DIR: documents-1.tsv, documents-2.tsv.gz, documents-3.tsv (the tagger's input, in that order),
all_matches.tsv (the tagger's --out-matches), all_entities.tsv, excluded_documents.txt and
scientific_names_and_ranks.tsv. The cases: non-ASCII letters, digits and whitespace (no-break and thin spaces,
U+2028, U+0085, vertical tab), literal backslashes and \\t in the text, several text fields and empty ones, CRLF
line ends, PMID keys with leading zeros, documents without a PMID key, without a year field, repeated or
excluded, a first file without a final newline, matches at the document's first and last character, overlapping
and repeated spans, spans beyond the text, spans with whitespace at an edge (their document is skipped), one name
of several species (the organism filter keeps the first), species and non-species ranks and taxa without a rank,
genes of several taxa, every tagger type the contexts know and some they do not, unknown serials, and matches of
all documents interleaved in the file. Every match's document is a document the chain keeps.
"""

from __future__ import annotations

import argparse
import gzip
import os
from random import Random
from typing import Dict, List, Tuple

WORDS = ("cells", "the", "of", "in", "protein", "p53", "BRCA1", "α-synuclein", "naïve", "Straße", "日本語", "🧬",
         "IL-6", "(n=12)", "-", "—", "%", "β", "x²", "TNF-α", "e.g.", "de novo", "a", "and", "mice", "yeast",
         "C:\\path", "back\\slash", "lit\\teral", "ends\\", "Ⅻ", "٣٤", "café")
SPACES = (" ", " ", " ", "  ", "\u00a0", "\u2009", "\u2028", "\u0085", "\x0b", " \x0c ", "\u3000")
# type -> identifiers; taxa of organisms -> rank (None: not in the ranks table)
TYPES = {-1: ["CIDm1", "CIDm2", "CIDs3"], -26: ["DOID:1", "DOID:2"], 9606: ["ENSP1", "ENSP2"],
         10090: ["ENSMUSP1"], -3: ["9606", "10090"], -21: ["GO:1"], -11: ["wiki1"], -50: ["t1"], 0: ["zero"]}
TAXA = {"9606": "species", "10090": "species", "562": "species", "4932": "species", "1279": "genus",
        "2759": "superkingdom", "12345": None, "9605": "genus"}


def words(rng: Random, count: int) -> str:
    """Random words with random (sometimes unusual) spaces between them."""
    parts = []
    for _ in range(count):
        parts.append(rng.choice(WORDS) if rng.random() > 0.002 else "\\\\t")  # shifts the offsets after it
        parts.append(rng.choice(SPACES))
    return "".join(parts[:-1])


def entities() -> Tuple[List[Tuple[int, int, str]], Dict[int, List[int]]]:
    """(serial, type, identifier) rows, and type -> serials; organisms: every taxon, serials in a stable order."""
    rows, by_type, serial = [], {}, 0
    for entity_type, identifiers in [*TYPES.items(), (-2, list(TAXA))]:
        for identifier in identifiers:
            serial += 1
            rows.append((serial, entity_type, identifier))
            by_type.setdefault(entity_type, []).append(serial)
    return rows, by_type


def text_fields(rng: Random, long: bool) -> List[str]:
    """A document's text fields (title, abstract, maybe more; some empty)."""
    fields = [words(rng, rng.randint(1, 12)), words(rng, rng.randint(800, 1500) if long else rng.randint(0, 60))]
    if rng.random() < 0.3:
        fields.append(words(rng, rng.randint(0, 20)))
    if rng.random() < 0.05:
        fields.insert(1, "")  # an empty field between two: get_contexts.py keeps a literal \t (offsets shift)
    return fields


def view(fields: List[str]) -> str:
    """Roughly the text the contexts index (fields joined by a space)."""
    return " ".join(fields)


def spans(rng: Random, text: str) -> List[Tuple[int, int]]:
    """(start, stop inclusive) spans: word starts and ends, the first and last character, overlaps, repeats."""
    starts = [i for i in range(len(text)) if not text[i].isspace() and (i == 0 or text[i - 1].isspace())]
    ends = [i for i in range(len(text)) if not text[i].isspace() and (i + 1 == len(text) or text[i + 1].isspace())]
    if not starts:
        return []
    chosen = []
    for _ in range(rng.randint(1, 8)):
        start = rng.choice(starts)
        later = [e for e in ends if e >= start]
        chosen.append((start, rng.choice(later[:4])))
    chosen.append((starts[0], ends[0]))
    chosen.append((starts[-1], ends[-1]))
    if rng.random() < 0.1:
        chosen.append((len(text) + 5, len(text) + 9))  # beyond the text
    if rng.random() < 0.08 and len(text) > 3:
        chosen.append((max(0, ends[0] - 1), min(len(text) - 1, ends[0] + 1)))  # whitespace at an edge, maybe
    return chosen


def match_rows(rng: Random, doc: str, text: str, by_type: Dict[int, List[int]]) -> List[str]:
    """The tagger's match lines of one document."""
    rows = []
    for start, stop in spans(rng, text):
        entity_type = rng.choice([-1, -2, -2, -2, -26, 9606, 10090, -3, -21, -11, -50, 0])
        serials = by_type[entity_type]
        picked = rng.sample(serials, rng.randint(1, min(3, len(serials))))
        if rng.random() < 0.05:
            picked.append(9999)  # not in the entities file
        for serial in picked:
            mention = text[start:stop + 1].replace("\t", " ")
            rows.append(f"{doc}\t1\t1\t{start}\t{stop}\t{mention}\t{entity_type}\t{serial}\n")
    return rows


def document_line(rng: Random, doc: str, fields: List[str]) -> str:
    """A tagger input line: keys, authors, journal, year, text fields; some with CRLF."""
    keys = f"PMID:{doc}" + rng.choice(["", "|DOI:10.1/x\\y", "|PMCID:PMC1"])
    end = "\r\n" if rng.random() < 0.1 else "\n"
    return "\t".join([keys, rng.choice(["A B", "Ä\\B", ""]), "J. Biol.", str(rng.randint(1990, 2024)), *fields]) + end


def generate(out: str, seed: int, count: int, long: int) -> None:
    """Write every file of the synthetic tagger run into `out`."""
    rng = Random(seed)
    os.makedirs(out, exist_ok=True)
    rows, by_type = entities()
    documents: List[str] = []
    matches: List[str] = []
    excluded = []
    for number in range(count):
        doc = str(rng.randint(1, 40_000_000))
        doc = "00" + doc if number % 17 == 3 else doc
        fields = text_fields(rng, number < long)
        documents.append(document_line(rng, doc, fields))
        matches.extend(match_rows(rng, doc, view(fields), by_type))
        if rng.random() < 0.1:
            documents.append(document_line(rng, doc, text_fields(rng, False)))  # repeated: the first wins
        if rng.random() < 0.1:
            skipped = str(rng.randint(40_000_001, 50_000_000))
            excluded.append(skipped)
            documents.append(document_line(rng, skipped, text_fields(rng, False)))
        if rng.random() < 0.05:
            documents.append(f"PMID:{rng.randint(50_000_001, 60_000_000)}\tA\tJ\n")  # no year: dropped
        if rng.random() < 0.05:
            documents.append(f"PMC:{rng.randint(1, 99)}\tA\tJ\t2000\tno PMID key\n")
    rng.shuffle(matches)
    write_documents(out, documents)
    write(os.path.join(out, "all_matches.tsv"), "".join(matches))
    write(os.path.join(out, "all_entities.tsv"), "".join(f"{s}\t{t}\t{i}\n" for s, t, i in rows))
    write(os.path.join(out, "excluded_documents.txt"), "".join(f"{d}\n" for d in excluded) + "no-such-doc\r\n")
    write(os.path.join(out, "scientific_names_and_ranks.tsv"),
          "".join(f"{taxid}\tname of {taxid}\t{rank}\n" for taxid, rank in TAXA.items() if rank))


def write_documents(out: str, lines: List[str]) -> None:
    """The documents in three files (the second gzipped); the first file's last line without its newline, so that
    the second file's first line (a document without matches) runs into it."""
    third = len(lines) // 3
    first = "".join(lines[:third]).rstrip("\r\n") if lines else ""
    second = "PMID:7\tA\tJ\t2001\tjoined to the line before\n" + "".join(lines[third:2 * third])
    write(os.path.join(out, "documents-1.tsv"), first)
    with gzip.open(os.path.join(out, "documents-2.tsv.gz"), "wb") as f:
        f.write(second.encode("utf-8"))
    write(os.path.join(out, "documents-3.tsv"), "".join(lines[2 * third:]))


def write(path: str, text: str) -> None:
    """Write UTF-8 text as is."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--long", type=int, default=2, help="documents of 800-1500 words (default 2)")
    args = parser.parse_args()
    generate(args.out, args.seed, args.documents, args.long)


if __name__ == "__main__":
    main()
