"""Raw text for NER prediction: documents read from a .txt file (one a line) or a folder (one a .txt file),
split into sentences and words with character offsets (bert_tf.ner.sentences), and the predictions written
back at character positions: JSONL entities with `start`/`end` into the document's text, and brat `.txt` +
`.ann` pairs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from bert_tf.ner import brat
from bert_tf.ner.data import NerExample
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory, write_text_atomic
from bert_tf.ner.entities import entities_of
from bert_tf.ner.sentences import Sentence, Token, split_sentences

TEXT_EXTENSION = ".txt"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclasses.dataclass
class RawDocument:
    """A document of raw text: id, text, where it came from, and its sentences (offsets into `text`)."""

    doc_id: str
    text: str
    source: str
    line: int  # 1-based line in `source` for one-document-a-line files; 0 for a whole file
    sentences: List[Sentence]

    @property
    def tokens(self) -> List[Token]:
        """Every word of the document in order."""
        return [t for s in self.sentences for t in s.tokens]


def is_raw_text(path: str) -> bool:
    """Whether a --predict_file is raw text: a .txt file or a folder (of .txt files)."""
    return os.path.isdir(path) or path.lower().endswith(TEXT_EXTENSION)


def _document(doc_id: str, text: str, source: str, line: int) -> RawDocument:
    return RawDocument(doc_id, text, source, line, split_sentences(text))


def read_documents(path: str) -> List[RawDocument]:
    """The documents of a folder (one a .txt file, sorted by name) or a .txt file (one a non-blank line)."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith(TEXT_EXTENSION))
        if not names:
            raise InputError("no .txt files found", path)
        return [_document(n[:-len(TEXT_EXTENSION)], brat.read_text(os.path.join(path, n)), os.path.join(path, n), 0)
                for n in names]
    stem = os.path.splitext(os.path.basename(path))[0]
    docs = []
    for number, line in enumerate(_LINE_BREAK.split(brat.read_text(path)), start=1):
        if line.strip():
            docs.append(_document(f"{stem}-line{number}", line, path, number))
    if not docs:
        raise InputError("no text found: the file is empty or blank", path)
    return docs


def as_examples(docs: Sequence[RawDocument]) -> List[NerExample]:
    """One untagged example a document (its words), for prediction with the whole document as context."""
    return [NerExample(tuple(t.text for t in doc.tokens), None, doc.line, doc.source) for doc in docs]


def entities_with_offsets(doc: RawDocument, tags: Sequence[str], confidence: Sequence[float],
                          log_probs: Optional[np.ndarray] = None) -> List[Dict]:
    """The predicted entities of a document with `start`/`end` character offsets into its text (and, given the
    chosen tags' log-probabilities, each entity's probability: see ner.entities_of)."""
    tokens = doc.tokens
    out = []
    for entity in entities_of([t.text for t in tokens], tags, confidence, log_probs):
        start, end = tokens[entity["start_word"]].start, tokens[entity["end_word"] - 1].end
        out.append({**entity, "start": start, "end": end, "text": doc.text[start:end]})
    return out


def write_predictions(docs: Sequence[RawDocument], tags: Sequence[Sequence[str]],
                      confidence: Sequence[np.ndarray], jsonl_path: str, brat_dir: str,
                      log_probs: Optional[Sequence[np.ndarray]] = None) -> None:
    """Write the entities as JSONL (one document a line, character offsets) and a brat folder of .txt + .ann."""
    lines = []
    with atomic_directory(brat_dir) as tmp:
        for i, (doc, doc_tags, doc_confidence) in enumerate(zip(docs, tags, confidence)):
            doc_log_probs = log_probs[i] if log_probs is not None else None
            entities = entities_with_offsets(doc, doc_tags, doc_confidence, doc_log_probs)
            lines.append(json.dumps({"document": i, "doc_id": doc.doc_id, "source": doc.source, "line": doc.line,
                                     "entities": entities}, ensure_ascii=False))
            with open(os.path.join(tmp, doc.doc_id + TEXT_EXTENSION), "w", encoding="utf-8", newline="") as f:
                f.write(doc.text)
            spans = [(e["type"], e["start"], e["end"]) for e in entities]
            with open(os.path.join(tmp, doc.doc_id + ".ann"), "w", encoding="utf-8", newline="") as f:
                f.write(brat.format_ann(doc.text, spans))
    write_text_atomic(jsonl_path, "".join(line + "\n" for line in lines))
