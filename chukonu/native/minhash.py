"""Word n-gram shingles, MinHash signatures and LSH band keys, in one compiled pass per batch.

For each document, straight from the Arrow string buffers:

1. words: maximal runs of bytes in ``[0-9A-Za-z_]`` or >= 0x80 (so any
   non-ASCII letter is part of a word), ASCII-lowercased, each hashed with
   XXH64 (seed 0);
2. shingles: every run of ``ngram`` consecutive words, hashed as XXH64 of the
   words' hashes as little-endian uint64s (seed 0); a document with fewer
   words than ``ngram`` (but at least one) is one shingle of all its words;
3. signature: for each permutation k, the minimum over shingles of
   ``(a[k] * h + b[k]) mod 2**64 >> 32`` (multiply-shift hashing; ``a`` odd);
4. bands: for band j, XXH64 of its ``rows`` signature values as
   little-endian uint64s, seeded with j, so equal keys mean equal bands.

A document without words gets no band keys: it is never a candidate.
The definitions are simple on purpose: a plain Python implementation with
the ``xxhash`` package reproduces every number (tests do exactly that).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from chukonu.native.xxh64 import xxh64_bytes, xxh64_lanes

EMPTY = np.uint32(0xFFFFFFFF)


@njit(inline="always", cache=True)
def _is_word_byte(c: np.uint8) -> bool:
    return bool((c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 or c >= 128)


@njit(cache=True)
def doc_word_hashes(data: np.ndarray, start: int, end: int, words: np.ndarray, tok: np.ndarray) -> int:
    """Fill ``words`` with the hashes of the document's words; return how many."""
    nw = 0
    p = start
    while p < end:
        while p < end and not _is_word_byte(data[p]):
            p += 1
        if p >= end:
            break
        t = 0
        while p < end and _is_word_byte(data[p]):
            c = data[p]
            if c >= 65 and c <= 90:
                c = c + 32
            tok[t] = c
            t += 1
            p += 1
        words[nw] = xxh64_bytes(tok, 0, t, np.uint64(0))
        nw += 1
    return nw


@njit(cache=True)
def doc_shingles(data: np.ndarray, start: int, end: int, ngram: int, words: np.ndarray, tok: np.ndarray,
                 out: np.ndarray) -> int:
    """Fill ``out`` with the document's shingle hashes (with repeats); return how many."""
    nw = doc_word_hashes(data, start, end, words, tok)
    if nw == 0:
        return 0
    if nw < ngram:
        out[0] = xxh64_lanes(words, 0, nw, np.uint64(0))
        return 1
    ns = nw - ngram + 1
    for j in range(ns):
        out[j] = xxh64_lanes(words, j, ngram, np.uint64(0))
    return ns


@njit(cache=True)
def signatures_and_bands(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, ngram: int,
                         a: np.ndarray, b: np.ndarray, bands: int, rows: int,
                         sig_out: np.ndarray, keys_out: np.ndarray, has_words: np.ndarray) -> None:
    """Band keys (docs x bands, uint64) of a batch, and signatures (docs x num_perm, uint32).

    ``sig_out`` may have a single row: it is then scratch space reused for
    every document, and only the band keys are kept (a batch's signature
    matrix is 1 KiB per document at 256 permutations).
    """
    n = offsets.shape[0] - 1
    longest = 0
    for i in range(n):
        ln = offsets[i + 1] - offsets[i]
        if ln > longest:
            longest = ln
    words = np.empty(longest // 2 + 2, dtype=np.uint64)
    tok = np.empty(longest + 1, dtype=np.uint8)
    shingles = np.empty(longest // 2 + 2, dtype=np.uint64)
    k_perm = a.shape[0]
    lanes = np.empty(rows, dtype=np.uint64)
    shift = np.uint64(32)
    keep = sig_out.shape[0] == n and n > 1
    for i in range(n):
        row = i if keep else 0
        for k in range(k_perm):
            sig_out[row, k] = EMPTY
        ns = 0
        if valid[i]:
            ns = doc_shingles(data, offsets[i], offsets[i + 1], ngram, words, tok, shingles)
        has_words[i] = ns > 0
        for s in range(ns):
            h = shingles[s]
            for k in range(k_perm):
                v = np.uint32((a[k] * h + b[k]) >> shift)
                if v < sig_out[row, k]:
                    sig_out[row, k] = v
        if ns > 0:
            for j in range(bands):
                for r in range(rows):
                    lanes[r] = np.uint64(sig_out[row, j * rows + r])
                keys_out[i, j] = xxh64_lanes(lanes, 0, rows, np.uint64(j))


@njit(cache=True)
def shingle_set(offsets: np.ndarray, data: np.ndarray, i: int, ngram: int) -> np.ndarray:
    """The sorted distinct shingle hashes of document ``i`` (for exact Jaccard)."""
    start, end = offsets[i], offsets[i + 1]
    ln = end - start
    words = np.empty(ln // 2 + 2, dtype=np.uint64)
    tok = np.empty(ln + 1, dtype=np.uint8)
    out = np.empty(ln // 2 + 2, dtype=np.uint64)
    ns = doc_shingles(data, start, end, ngram, words, tok, out)
    return np.unique(out[:ns])


@njit(cache=True)
def bucket_edges(keys: np.ndarray, ids: np.ndarray, all_pairs: bool, max_bucket: int) -> tuple:
    """Candidate pairs from (band key, doc id) rows sorted by key (ids in any order within a key).

    Star edges (smallest id of the bucket, each other id) unless
    ``all_pairs``, when every pair of a bucket is listed (for verification)
    up to ``max_bucket`` members, past which a bucket falls back to star edges.
    """
    n = keys.shape[0]
    cap = n // 8 + 16   # most buckets hold one document: start small, grow by doubling
    left = np.empty(cap, dtype=np.int64)
    right = np.empty(cap, dtype=np.int64)
    m = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        size = j - i
        if size > 1:
            if all_pairs and size <= max_bucket:
                need = size * (size - 1) // 2
            else:
                need = size - 1
            if m + need > cap:
                cap = (m + need) * 2
                nl = np.empty(cap, dtype=np.int64)
                nr = np.empty(cap, dtype=np.int64)
                nl[:m] = left[:m]
                nr[:m] = right[:m]
                left, right = nl, nr
            if all_pairs and size <= max_bucket:
                for x in range(i, j):
                    for y in range(x + 1, j):
                        if ids[x] != ids[y]:
                            left[m] = ids[x]
                            right[m] = ids[y]
                            m += 1
            else:
                low = ids[i]
                for y in range(i + 1, j):
                    if ids[y] < low:
                        low = ids[y]
                for y in range(i, j):
                    if ids[y] != low:
                        left[m] = low
                        right[m] = ids[y]
                        m += 1
        i = j
    return left[:m], right[:m]


@njit(cache=True)
def signatures_from_words(word_starts: np.ndarray, word_hashes: np.ndarray, valid: np.ndarray, ngram: int,
                          a: np.ndarray, b: np.ndarray, bands: int, rows: int, sig_out: np.ndarray,
                          keys_out: np.ndarray, has_words: np.ndarray) -> None:
    """As ``signatures_and_bands``, from words already split and hashed (the ``nonword`` tokenizer).

    Document i's word hashes are ``word_hashes[word_starts[i]:word_starts[i + 1]]``; shingles,
    signatures and band keys follow the same definitions as for the byte tokenizer.
    """
    n = word_starts.shape[0] - 1
    longest = 1
    for i in range(n):
        ln = word_starts[i + 1] - word_starts[i]
        if ln > longest:
            longest = ln
    words = np.empty(longest + 1, dtype=np.uint64)
    shingles = np.empty(longest + 1, dtype=np.uint64)
    k_perm = a.shape[0]
    lanes = np.empty(rows, dtype=np.uint64)
    shift = np.uint64(32)
    keep = sig_out.shape[0] == n and n > 1
    for i in range(n):
        row = i if keep else 0
        for k in range(k_perm):
            sig_out[row, k] = EMPTY
        nw = word_starts[i + 1] - word_starts[i] if valid[i] else 0
        for w in range(nw):
            words[w] = word_hashes[word_starts[i] + w]
        ns = 0
        if nw > 0:
            if nw < ngram:
                shingles[0] = xxh64_lanes(words, 0, nw, np.uint64(0))
                ns = 1
            else:
                ns = nw - ngram + 1
                for j in range(ns):
                    shingles[j] = xxh64_lanes(words, j, ngram, np.uint64(0))
        has_words[i] = ns > 0
        for s in range(ns):
            h = shingles[s]
            for k in range(k_perm):
                v = np.uint32((a[k] * h + b[k]) >> shift)
                if v < sig_out[row, k]:
                    sig_out[row, k] = v
        if ns > 0:
            for j in range(bands):
                for r in range(rows):
                    lanes[r] = np.uint64(sig_out[row, j * rows + r])
                keys_out[i, j] = xxh64_lanes(lanes, 0, rows, np.uint64(j))
