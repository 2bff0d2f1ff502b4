"""Convert a CoNLL-like file (token first column, tag last column) to the NER CSV layout.

Usage: python scripts/conll_to_csv.py INPUT OUTPUT.csv [--bare-type Chemical] [--force]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert_tf.ner.data import read_conll, write_ner_csv  # noqa: E402
from bert_tf.errors import InputError  # noqa: E402


def parse_arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(description="Convert a CoNLL-like NER file to the tokens/tags CSV layout.")
    parser.add_argument("input", help="CoNLL-like file: one token a line, blank line between sentences")
    parser.add_argument("output", help="CSV file to write")
    parser.add_argument("--bare-type", default="ENT", help="entity type given to bare B / I tags (default: ENT)")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT when it exists")
    return parser.parse_args(argv)


def convert(input_path: str, output_path: str, bare_type: str, force: bool) -> int:
    """Convert `input_path` to `output_path`; the number of sentences written."""
    if os.path.isdir(output_path):
        raise InputError("is a directory, expected a CSV file to write", output_path)
    if os.path.exists(output_path) and not force:
        raise InputError("already exists; use --force to overwrite it", output_path)
    examples = read_conll(input_path, bare_tag_type=bare_type)
    try:
        write_ner_csv(output_path, examples)
    except OSError as error:
        raise InputError(f"cannot write the file: {error.strerror or error}", output_path) from None
    return len(examples)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: 0 on success, 2 with a one-line message on bad input."""
    arguments = parse_arguments(argv)
    try:
        count = convert(arguments.input, arguments.output, arguments.bare_type, arguments.force)
    except InputError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"wrote {count} sentences to {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
