"""Synthetic corpora with planted near-duplicates of known Jaccard similarity (tests, benchmarks).

Originals are sequences of words drawn from a Zipf-like vocabulary, so
unrelated documents share common words but almost never a 5-word shingle.
A planted copy of an original gets k words replaced at evenly spaced
positions, k chosen for a target Jaccard similarity (each replacement far
from the others changes ``ngram`` shingles: J = (S - c) / (S + c) with
c = ngram * k). The similarity actually reached is then measured exactly,
and that measured value decides the ground truth: a copy is a true
duplicate when its Jaccard similarity with its original is >= threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass
class PlantedCorpus:
    texts: list[str]
    source: np.ndarray      # for each planted copy: index of its original
    copy: np.ndarray        # index of the planted copy
    jaccard: np.ndarray     # exact Jaccard similarity of (original, copy) shingle sets

    def true_duplicates(self, threshold: float) -> set[int]:
        return {int(c) for c, j in zip(self.copy, self.jaccard) if j >= threshold}

    def table(self) -> pa.Table:
        return pa.table({"id": np.arange(len(self.texts), dtype=np.int64), "text": self.texts})


def score(removed: set[int], truth: set[int]) -> tuple[float, float]:
    """(precision, recall) of the removed rows against the planted truth."""
    hit = len(removed & truth)
    precision = hit / len(removed) if removed else 1.0
    recall = hit / len(truth) if truth else 1.0
    return precision, recall


def generate(n_docs: int, dup_fraction: float = 0.2, min_words: int = 50, max_words: int = 200,
             jaccard_range: tuple[float, float] = (0.5, 1.0), vocab_size: int = 50_000, ngram: int = 5,
             seed: int = 7) -> PlantedCorpus:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:x}" for i in range(vocab_size)], dtype=object)
    weights = 1.0 / (np.arange(vocab_size) + 10.0)
    weights /= weights.sum()
    n_copies = int(n_docs * dup_fraction)
    n_orig = n_docs - n_copies
    lengths = rng.integers(min_words, max_words + 1, size=n_orig)
    words = rng.choice(vocab_size, size=int(lengths.sum()), p=weights)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    originals = [words[starts[i]:starts[i + 1]] for i in range(n_orig)]
    sources = rng.choice(n_orig, size=n_copies, replace=False)
    targets = rng.uniform(jaccard_range[0], jaccard_range[1], size=n_copies)
    copies = []
    for src, j in zip(sources, targets):
        doc = originals[src].copy()
        shingles = max(1, len(doc) - ngram + 1)
        changed = shingles * (1 - j) / (1 + j)
        k = int(round(changed / ngram))
        if k:
            positions = np.linspace(0, len(doc) - 1, num=k).astype(np.int64)
            doc[positions] = rng.choice(vocab_size, size=k, p=weights)
        copies.append(doc)
    # copies are placed after all originals, so the original is the one kept
    order = rng.permutation(n_copies)
    docs = originals + [copies[i] for i in order]
    sources = sources[order]
    copy_idx = np.arange(n_orig, n_docs)
    texts = [" ".join(vocab[d]) for d in docs]
    exact = _exact_jaccard(texts, sources, copy_idx, ngram)
    return PlantedCorpus(texts, sources, copy_idx, exact)


def _exact_jaccard(texts: list[str], left: np.ndarray, right: np.ndarray, ngram: int) -> np.ndarray:
    from chukonu.dedup.config import MinHashConfig
    from chukonu.dedup.verify import jaccard, shingle_sets

    involved = np.unique(np.concatenate([left, right]))
    sets = shingle_sets(pa.array([texts[i] for i in involved]), MinHashConfig(ngram=ngram))
    where = {int(i): k for k, i in enumerate(involved)}
    return np.array([jaccard(sets[where[int(a)]], sets[where[int(b)]]) for a, b in zip(left, right)])
