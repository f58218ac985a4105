"""Data builders: the Bambara demo corpus and synthetic (audio, hypothesis, score) rows for the reward model.

Importing this package never loads espeak-ng (GPL-3): synthesis happens only inside ``build_demo_corpus``
(and ``load_demo_corpus`` when the corpus is not built yet), through the optional ``rlnf[demo]`` extra.
"""

from .bambara_grammar import bambara_number, generate_sentences, lexicon_words
from .demo_corpus import (
    DOMAINS,
    SPLIT_DOMAIN,
    SPLITS,
    build_demo_corpus,
    default_corpus_dir,
    load_demo_corpus,
    split_sentences,
)
from .synthetic import CORRUPTION_KINDS, corrupt_transcript, make_scorer_dataset, transcript_score

__all__ = [
    "CORRUPTION_KINDS",
    "DOMAINS",
    "SPLITS",
    "SPLIT_DOMAIN",
    "bambara_number",
    "build_demo_corpus",
    "corrupt_transcript",
    "default_corpus_dir",
    "generate_sentences",
    "lexicon_words",
    "load_demo_corpus",
    "make_scorer_dataset",
    "split_sentences",
    "transcript_score",
]
