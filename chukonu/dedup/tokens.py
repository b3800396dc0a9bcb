"""The ``nonword`` tokenizer: words as text-dedup-style references split them, hashed for MinHash.

``re.split(r"\\W", text.lower())`` in Python, vectorised with Arrow: the
column is lowercased (Unicode) and split on ``[^\\pL\\pN_]`` (Python's
Unicode ``\\W``: anything not a letter, digit or underscore), keeping the
empty pieces between adjacent separators as Python's split does. Each word
is then hashed with XXH64 (seed 0) straight from the Arrow buffers, and the
documents' word hashes go to the same shingle/signature kernel as the byte
tokenizer's.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NONWORD = r"[^\pL\pN_]"


def split_words(texts: pa.Array) -> pa.Array:
    """A list of words per document (null for a null document)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_string(texts.type):
        texts = texts.cast(pa.string())
    return pc.split_pattern_regex(pc.utf8_lower(texts), pattern=NONWORD)


def word_hashes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(word start per document, XXH64 per word, document validity)."""
    from chukonu.dedup.signatures import string_buffers
    from chukonu.native.xxh64 import hash_strings
    words = split_words(texts)
    valid = pc.is_valid(words).to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(words), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = pc.list_flatten(words)
    if len(flat) == 0:
        return starts, np.zeros(0, np.uint64), valid
    offsets, data, ok = string_buffers(flat)
    return starts, hash_strings(offsets, data, ok, np.uint64(0), np.uint64(0)), valid


def python_words(text: str) -> list[bytes]:
    """The same words one document at a time in plain Python (the reference implementation's)."""
    import re
    return [w.encode("utf-8") for w in re.split(r"\W", text.lower())]
