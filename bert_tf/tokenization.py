"""WordPiece tokenization with the Rust `tokenizers` library, built from a checkpoint's vocabulary."""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from bert_tf.errors import InputError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
TOKENIZER_CONFIG = "tokenizer_config.json"


def _read_vocab(vocab_path: str) -> Dict[str, int]:
    """Read a BERT vocab.txt (one token a line, id = line index)."""
    vocab: Dict[str, int] = {}
    try:
        with open(vocab_path, encoding="utf-8") as f:
            for index, line in enumerate(f):
                token = line.rstrip("\r\n")
                if token and token not in vocab:
                    vocab[token] = index
    except UnicodeDecodeError as e:
        raise InputError(f"vocabulary is not UTF-8 ({e.reason})", vocab_path) from None
    if not vocab:
        raise InputError("vocabulary is empty", vocab_path)
    return vocab


def _vocab_looks_cased(vocab: Iterable[str]) -> bool:
    """Guess casing from a vocabulary: cased vocabularies hold many tokens with capitals."""
    tokens = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in tokens if any(c.isupper() for c in t))
    return upper > 0.01 * max(len(tokens), 1)


def detect_lowercase(model_dir: str) -> Tuple[Optional[bool], str]:
    """Return (do_lower_case, where it came from) from a checkpoint's tokenizer files, or (None, why)."""
    config_path = os.path.join(model_dir, TOKENIZER_CONFIG)
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"not valid JSON ({e})", config_path) from None
        if isinstance(config, dict) and isinstance(config.get("do_lower_case"), bool):
            return config["do_lower_case"], f"{TOKENIZER_CONFIG} (do_lower_case)"
    json_path = os.path.join(model_dir, "tokenizer.json")
    if os.path.isfile(json_path):
        try:
            with open(json_path, encoding="utf-8") as f:
                normalizer = json.load(f).get("normalizer") or {}
        except (ValueError, UnicodeDecodeError, AttributeError):
            normalizer = {}
        if isinstance(normalizer, dict) and isinstance(normalizer.get("lowercase"), bool):
            return normalizer["lowercase"], "tokenizer.json (normalizer)"
    vocab_path = os.path.join(model_dir, "vocab.txt")
    if os.path.isfile(vocab_path):
        cased = _vocab_looks_cased(_read_vocab(vocab_path))
        return (not cased), "vocab.txt (guessed from capitals in the vocabulary)"
    return None, "no tokenizer files"


def _bert_normalizer(lowercase: bool) -> normalizers.Normalizer:
    # strip_accents=None follows `lowercase`, as in the original BERT tokenizer.
    return normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer that encodes words and texts without special tokens."""

    def __init__(self, tokenizer: Tokenizer, lowercase: bool, source: str):
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.source = source
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        for token in SPECIAL_TOKENS:
            if tokenizer.token_to_id(token) is None:
                raise InputError(f"the vocabulary has no {token} token", source)
        self.pad_id = tokenizer.token_to_id("[PAD]")
        self.unk_id = tokenizer.token_to_id("[UNK]")
        self.cls_id = tokenizer.token_to_id("[CLS]")
        self.sep_id = tokenizer.token_to_id("[SEP]")
        self._word_cache: Dict[str, List[int]] = {}

    @classmethod
    def from_vocab(cls, vocab_path: str, lowercase: bool) -> "WordPieceTokenizer":
        """Build the tokenizer from a BERT vocab.txt."""
        vocab = _read_vocab(vocab_path)
        tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        tokenizer.normalizer = _bert_normalizer(lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return cls(tokenizer, lowercase, vocab_path)

    @classmethod
    def from_tokenizer_json(cls, json_path: str, lowercase: Optional[bool]) -> "WordPieceTokenizer":
        """Load a Hugging Face tokenizer.json; `lowercase` (if given) replaces its normalizer's casing."""
        try:
            tokenizer = Tokenizer.from_file(json_path)
        except Exception as e:  # the Rust library raises a plain Exception
            raise InputError(f"cannot read tokenizer ({str(e).splitlines()[0]})", json_path) from None
        if lowercase is not None:
            tokenizer.normalizer = _bert_normalizer(lowercase)
        tokenizer.post_processor = None
        return cls(tokenizer, bool(lowercase), json_path)

    @classmethod
    def from_model_dir(cls, model_dir: str, do_lower_case: Optional[bool] = None) -> "WordPieceTokenizer":
        """Load the tokenizer of a checkpoint directory (vocab.txt preferred, else tokenizer.json)."""
        detected, _ = detect_lowercase(model_dir)
        lowercase = detected if do_lower_case is None else do_lower_case
        vocab_path = os.path.join(model_dir, "vocab.txt")
        json_path = os.path.join(model_dir, "tokenizer.json")
        if os.path.isfile(vocab_path):
            return cls.from_vocab(vocab_path, bool(lowercase))
        if os.path.isfile(json_path):
            return cls.from_tokenizer_json(json_path, lowercase)
        raise InputError("no vocabulary: expected vocab.txt or tokenizer.json", model_dir)

    @property
    def vocab_size(self) -> int:
        """Number of entries in the vocabulary."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary token; InputError if the vocabulary lacks it."""
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise InputError(f"token {token!r} is not in the vocabulary", self.source)
        return token_id

    def encode_texts(self, texts: Sequence[str]) -> List[List[int]]:
        """Encode free texts (batched, in parallel) to WordPiece ids, no special tokens."""
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode_words(self, words: Sequence[str]) -> List[List[int]]:
        """Encode each word to its WordPiece ids; a word that yields no piece becomes [UNK]."""
        missing = [w for w in dict.fromkeys(words) if w not in self._word_cache]
        if missing:
            for word, ids in zip(missing, self.encode_texts(missing)):
                self._word_cache[word] = ids if ids else [self.unk_id]
            if len(self._word_cache) > 2_000_000:
                self._word_cache.clear()
                return self.encode_words(words)
        return [self._word_cache[w] for w in words]

    def save(self, directory: str) -> None:
        """Write vocab.txt (or tokenizer.json) and a tokenizer_config.json into `directory`."""
        os.makedirs(directory, exist_ok=True)
        if self.source.endswith(".txt"):
            shutil.copyfile(self.source, os.path.join(directory, "vocab.txt"))
        else:
            self.tokenizer.save(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
            json.dump({"do_lower_case": self.lowercase, "tokenizer_class": "BertTokenizer"}, f, indent=2)
