"""A small text corpus generated from a probabilistic grammar with known latent factors.

Every sentence is drawn from a grammar whose choices are driven by four
factors, kept beside the sentence as integer labels:

* ``topic`` (food, sport, weather, travel): picks the subject, the noun, its
  adjective and the closing evaluation;
* ``sentiment`` (negative, positive): picks the verb and the adjectives;
* ``tense`` (past, present, future): picks the verb form ("loved" / "loves" /
  "will love") and, in long sentences, the time adverbial and "was/is/will be";
* ``length`` (short, long): long sentences add a time adverbial in front and a
  "because it ..." clause at the end.

Each factor changes several words of the sentence, so a latent code that
carries information about the sentence carries the factors, while a collapsed
one carries none. The factors are drawn independently and uniformly, and the
words given the factors uniformly, so everything is reproducible from a seed::

    S       -> [TIME(tense)] SUBJ(topic) VERB(sentiment, tense) "a" ADJ(topic, sentiment)
               NOUN(topic) [CLAUSE(topic, sentiment, tense)] "."
    CLAUSE  -> "because it" BE(tense) INTENSIFIER EVAL(sentiment)

The corpus shipped with the package (``data/corpus.tsv``) is
``generate_corpus(DEFAULT_N, DEFAULT_SEED)``; :func:`load_corpus` reads it.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FACTORS",
    "DEFAULT_N",
    "DEFAULT_SEED",
    "CORPUS_PATH",
    "Corpus",
    "generate_corpus",
    "load_corpus",
    "write_corpus",
    "grammar_words",
]

#: Factor name -> names of its values; a label is an index into this tuple.
FACTORS: dict[str, tuple[str, ...]] = {
    "topic": ("food", "sport", "weather", "travel"),
    "sentiment": ("negative", "positive"),
    "tense": ("past", "present", "future"),
    "length": ("short", "long"),
}
DEFAULT_N = 3000
DEFAULT_SEED = 0
CORPUS_PATH = Path(__file__).parent / "data" / "corpus.tsv"

# Word lists, indexed by factor values (topic, sentiment, tense as in FACTORS).
_SUBJECTS = (
    ("the chef", "my aunt", "the waiter", "our guest"),
    ("the coach", "the striker", "my cousin", "the referee"),
    ("the farmer", "the sailor", "my neighbour", "the gardener"),
    ("the tourist", "my brother", "the pilot", "our guide"),
)
_NOUNS = (
    ("soup", "bread", "pasta", "salad", "cake"),
    ("match", "game", "race", "final", "season"),
    ("morning", "weekend", "afternoon", "forecast", "spring"),
    ("trip", "flight", "train", "journey", "hotel"),
)
_ADJECTIVES = (  # [topic][sentiment]
    (("bland", "stale", "greasy"), ("delicious", "fresh", "tasty")),
    (("boring", "sloppy", "unfair"), ("thrilling", "brilliant", "close")),
    (("rainy", "cold", "stormy"), ("sunny", "warm", "mild")),
    (("crowded", "delayed", "noisy"), ("comfortable", "scenic", "quick")),
)
_VERBS = (  # [sentiment] -> (past, present, future)
    (("hated", "hates", "will hate"), ("disliked", "dislikes", "will dislike"),
     ("regretted", "regrets", "will regret")),
    (("loved", "loves", "will love"), ("enjoyed", "enjoys", "will enjoy"),
     ("praised", "praises", "will praise")),
)
_TIMES = (
    ("yesterday", "last week", "last year"),
    ("today", "these days", "right now"),
    ("tomorrow", "next week", "next year"),
)
_BE = ("was", "is", "will be")
_INTENSIFIERS = ("really", "truly", "quite", "very")
_EVALUATIONS = (
    ("awful", "terrible", "dreadful", "disappointing"),
    ("wonderful", "great", "lovely", "excellent"),
)


@dataclass(frozen=True)
class Corpus:
    """Sentences with their factor labels.

    Attributes:
        sentences: One sentence per entry, lower-case, tokens separated by single spaces.
        labels: Factor name -> one integer label per sentence (an index into
            ``factors[name]``).
        factors: Factor name -> names of its values.
    """

    sentences: list[str]
    labels: dict[str, list[int]]
    factors: dict[str, tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.sentences)


def _sentence(rng: random.Random, topic: int, sentiment: int, tense: int, long: bool) -> str:
    words = []
    if long:
        words.append(rng.choice(_TIMES[tense]))
    words.append(rng.choice(_SUBJECTS[topic]))
    words.append(rng.choice(_VERBS[sentiment])[tense])
    words.append("a")
    words.append(rng.choice(_ADJECTIVES[topic][sentiment]))
    words.append(rng.choice(_NOUNS[topic]))
    if long:
        words.append(f"because it {_BE[tense]}")
        words.append(rng.choice(_INTENSIFIERS))
        words.append(rng.choice(_EVALUATIONS[sentiment]))
    words.append(".")
    return " ".join(words)


def generate_corpus(n: int = DEFAULT_N, seed: int = DEFAULT_SEED) -> Corpus:
    """Draw ``n`` sentences from the grammar, reproducibly.

    Args:
        n: Number of sentences.
        seed: Seed of the local :class:`random.Random` used (never the global RNG).

    Returns:
        The :class:`Corpus`; the same ``(n, seed)`` always gives the same corpus,
        and the first ``m`` sentences of a corpus of ``n > m`` are those of size ``m``.
    """
    rng = random.Random(seed)
    sentences: list[str] = []
    labels: dict[str, list[int]] = {name: [] for name in FACTORS}
    for _ in range(n):
        values = {name: rng.randrange(len(names)) for name, names in FACTORS.items()}
        sentences.append(
            _sentence(rng, values["topic"], values["sentiment"], values["tense"],
                      long=values["length"] == 1)
        )
        for name, value in values.items():
            labels[name].append(value)
    return Corpus(sentences=sentences, labels=labels, factors=dict(FACTORS))


def grammar_words() -> list[str]:
    """Every word the grammar can produce, sorted (the vocabulary of the text VAE)."""
    phrases = [w for group in _SUBJECTS + _NOUNS for w in group]
    phrases += [w for topic in _ADJECTIVES for sent in topic for w in sent]
    phrases += [w for sent in _VERBS for verb in sent for w in verb]
    phrases += [w for group in _TIMES + _EVALUATIONS for w in group]
    phrases += [f"because it {be}" for be in _BE] + list(_INTENSIFIERS) + ["a", "."]
    return sorted({word for phrase in phrases for word in phrase.split()})


def write_corpus(corpus: Corpus, path: str | Path = CORPUS_PATH) -> Path:
    """Write a corpus as TSV: a header ``sentence, topic, sentiment, tense, length``.

    Labels are written by value name (``food``, ``positive``, ...) to be readable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["sentence", *FACTORS])
        for i, sentence in enumerate(corpus.sentences):
            names = [corpus.factors[f][corpus.labels[f][i]] for f in FACTORS]
            writer.writerow([sentence, *names])
    return path


def load_corpus(path: str | Path = CORPUS_PATH) -> Corpus:
    """Read a corpus written by :func:`write_corpus` (by default the bundled one).

    Returns:
        The :class:`Corpus`, labels converted back to integer indices.
    """
    sentences: list[str] = []
    labels: dict[str, list[int]] = {name: [] for name in FACTORS}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            sentences.append(row["sentence"])
            for name, names in FACTORS.items():
                labels[name].append(names.index(row[name]))
    return Corpus(sentences=sentences, labels=labels, factors=dict(FACTORS))


if __name__ == "__main__":  # regenerate the bundled file: python -m collapse_diag.examples.corpus
    print(write_corpus(generate_corpus()))
