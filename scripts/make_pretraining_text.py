"""Write a sentence-per-line test corpus in Google's pretraining format (a blank line between documents) that
exercises what create_pretraining_data.py must read exactly as Google's script does: short and long documents,
several blank lines, whitespace-only lines, accents, Greek final sigma, CJK, control and format characters, a
byte order mark, CR inside lines, no-break and ideographic spaces, words longer than 100 and 200 characters.

    python scripts/make_pretraining_text.py OUT.txt [--documents N] [--seed S]
"""

from __future__ import annotations

import argparse
import random

WORDS = ("the patient was treated with aspirin and ibuprofen for chronic pain in the lower back while doctors "
         "monitored kidney function liver enzymes blood pressure heart rate and glucose levels over several weeks "
         "before surgery unaffable running jumped protein binding receptor gene expression cells").split()
SPECIAL_LINES = [
    "Café naïve résumé façade Ångström Øresund ĲSSEL İstanbul straße.",
    "ΟΔΟΣ ΣΟΦΙΑΣ και η Οδύσσεια: ελληνικά κείμενα.",
    "北京大学的研究人员 studied 東京 and 서울 (Hangul) and ｶﾀｶﾅ today.",
    "Control\x07chars\x1b and zero\u200bwidth\u200djoiners plus\u00a0no-break and ideographic\u3000spaces.",
    "Dashes — and quotes « guillemets » ¿question? ¡exclamation! and math ≤ ≥ ± ∑ symbols $5 ^caret `tick`.",
    "A word of 150 letters " + "a" * 150 + " and of 250 " + "b" * 250 + " end.",
    "Carriage\rreturn inside a line and\ttabs\tbetween words.",
    "Emoji 😀 and combining e\u0301 \u0301alone and ligature ﬁ and Ｆｕｌｌｗｉｄｔｈ letters.",
    "Line\u2028separator and next\u0085line characters inside.",
]


def sentence(rng: random.Random) -> str:
    """A sentence of random corpus words, capitalised, with a full stop (sometimes a comma or a number)."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 25))]
    if rng.random() < 0.3:
        words.insert(rng.randint(0, len(words)), f"{rng.randint(1, 999)},")
    return " ".join(words).capitalize() + rng.choice([".", ".", "?", "!"])


def corpus(documents: int, seed: int) -> str:
    """The corpus text: `documents` documents of 1 to 12 sentences, one of 150, the special lines spread in."""
    rng = random.Random(seed)
    docs = [[sentence(rng) for _ in range(rng.randint(1, 12))] for _ in range(documents)]
    docs[len(docs) // 2] = [sentence(rng) for _ in range(150)]
    for line in SPECIAL_LINES:
        rng.choice(docs).insert(0, line)
    separators = ["\n\n", "\n\n", "\n\n\n", "\n   \n", "\n\u3000\n", "\n\x07\n"]
    text = "\ufeff"
    for doc in docs:
        text += "\n".join(doc) + rng.choice(separators)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.output, "w", encoding="utf-8", newline="") as f:
        f.write(corpus(args.documents, args.seed))


if __name__ == "__main__":
    main()
