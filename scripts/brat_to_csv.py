"""Convert a folder of brat standoff files (.txt + .ann) to the NER CSV layout run_ner.py trains on.

Usage: python scripts/brat_to_csv.py FOLDER OUTPUT.csv [--force]

Each .txt is split into sentences and words (bert_tf.ner.sentences; words are also cut at annotation
boundaries), tagged IOB2 from the .ann, and written one sentence a row with its document id (the file
name without .txt) in a `doc_id` column. Discontinuous annotations are skipped and overlapping ones keep
the longest; both are reported (count and first cases, FILE:LINE) on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert_tf.ner.brat import folder_to_csv  # noqa: E402
from bert_tf.errors import InputError  # noqa: E402


def parse_arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(description="Convert brat standoff (.txt + .ann) to the NER CSV layout.")
    parser.add_argument("folder", help="folder holding NAME.txt and NAME.ann pairs")
    parser.add_argument("output", help="CSV file to write (columns doc_id, tokens, tags)")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT when it exists")
    return parser.parse_args(argv)


def convert(folder: str, output: str, force: bool) -> str:
    """Convert `folder` to `output`; the summary line."""
    if os.path.isdir(output):
        raise InputError("is a directory, expected a CSV file to write", output)
    if os.path.exists(output) and not force:
        raise InputError("already exists; use --force to overwrite it", output)
    try:
        docs, rows, report = folder_to_csv(folder, output)
    except OSError as error:
        raise InputError(f"cannot write the file: {error.strerror or error}", output) from None
    for line in report.lines():
        print(f"note: {line}", file=sys.stderr)
    return f"wrote {rows} sentences of {docs} documents to {output}"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: 0 on success, 2 with a one-line message on bad input."""
    arguments = parse_arguments(argv)
    try:
        summary = convert(arguments.folder, arguments.output, arguments.force)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
