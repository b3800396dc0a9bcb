"""kvserve tier 1: block keys (kvserve.prefix), no daemon.

Keys must be identical across processes and runs (no salted hash), must
differ across namespaces, must chain (a key covers its whole prefix), and
bad input must be refused with a clear error.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kvserve.prefix import Namespace, block_hashes, check_key

NS = Namespace("meta-llama/Llama-3.1-8B", "bf16", "nhd", 0, 8)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, sys
from kvserve.prefix import Namespace, block_hashes
ns = Namespace("meta-llama/Llama-3.1-8B", "bf16", "nhd", 0, 8)
tokens = list(range(0, 3 * 512 + 100))
print(json.dumps([k.hex() for k in block_hashes(tokens, namespace=ns)]
                 + [k.hex() for k in block_hashes(tokens, namespace=ns, algo="sha256")]))
"""


def test_keys_are_identical_across_processes_and_hash_seeds() -> None:
    tokens = list(range(0, 3 * 512 + 100))
    here = [k.hex() for k in block_hashes(tokens, namespace=NS)] + \
           [k.hex() for k in block_hashes(tokens, namespace=NS, algo="sha256")]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT}
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        assert json.loads(out) == here


def test_keys_are_pinned_to_known_values() -> None:
    # a change of the chaining scheme would silently invalidate every stored block
    keys = block_hashes(np.arange(1024), namespace=Namespace("m"), block_size=512)
    assert [k.hex() for k in keys] == ["66be6285dce2b1370d263a4a001d997f", "7458af887109984eaa4d48c8736846f4"]
    assert block_hashes(np.arange(512), namespace=Namespace("m"), algo="sha256")[0].hex() == \
        "92032f7aea0d577926c50e8d80d7b342bfacb4b314d5795c119d908b435c3b2a"
    # a namespace given by name is the same namespace
    assert keys[0] == block_hashes(list(range(512)), namespace="m/bf16/default/tp0of1")[0]


def test_only_full_blocks_are_keyed() -> None:
    assert block_hashes([], namespace=NS) == []
    assert block_hashes(list(range(511)), namespace=NS) == []
    assert len(block_hashes(list(range(512)), namespace=NS)) == 1
    assert len(block_hashes(list(range(1023)), namespace=NS)) == 1
    assert len(block_hashes(list(range(40160)), namespace=NS)) == 40160 // 512


def test_keys_chain_over_the_whole_prefix() -> None:
    a = np.arange(4 * 512)
    b = a.copy()
    b[2 * 512 + 7] += 1  # differ inside block 2
    ka, kb = block_hashes(a, namespace=NS), block_hashes(b, namespace=NS)
    assert ka[:2] == kb[:2]
    assert ka[2] != kb[2] and ka[3] != kb[3]  # block 3 is identical, but its prefix is not
    c = a.copy()
    c[0] += 1  # differ in the first token: nothing is shared
    assert not set(block_hashes(c, namespace=NS)) & set(ka)


def test_namespaces_separate_keys() -> None:
    tokens = np.arange(512)
    variants = [NS, Namespace("meta-llama/Llama-3.1-70B", "bf16", "nhd", 0, 8),
                Namespace(NS.model, "fp8", "nhd", 0, 8), Namespace(NS.model, "bf16", "hnd", 0, 8),
                Namespace(NS.model, "bf16", "nhd", 1, 8), Namespace(NS.model, "bf16", "nhd", 0, 4)]
    keys = {block_hashes(tokens, namespace=ns)[0] for ns in variants}
    assert len(keys) == len(variants)
    # the block size and the algorithm are part of the key too
    assert block_hashes(np.arange(1024), namespace=NS, block_size=1024)[0] not in keys
    sha = block_hashes(tokens, namespace=NS, algo="sha256")[0]
    assert len(sha) == 32 and sha[:16] not in keys


def test_token_dtypes_hash_alike() -> None:
    base = block_hashes(list(range(512)), namespace=NS)
    for dtype in (np.int32, np.int64, np.uint32, np.uint16):
        assert block_hashes(np.arange(512, dtype=dtype), namespace=NS) == base


@pytest.mark.parametrize("tokens, err", [
    (np.arange(512, dtype=np.float32), TypeError),
    ([-1] * 512, ValueError),
    ([1 << 32] * 512, ValueError),
    (np.zeros((2, 512), dtype=np.int64), ValueError),
])
def test_bad_tokens_are_refused(tokens: object, err: type) -> None:
    with pytest.raises(err):
        block_hashes(tokens, namespace=NS)  # type: ignore[arg-type]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        block_hashes([1] * 512, namespace=NS, block_size=0)
    with pytest.raises(ValueError):
        block_hashes([1] * 512, namespace=NS, algo="md5")
    with pytest.raises(ValueError):
        block_hashes([1] * 512, namespace="no spaces allowed")
    for bad in ("", "x" * 300, "a b", "é"):
        with pytest.raises(ValueError):
            block_hashes([1] * 512, namespace=bad)
    with pytest.raises(ValueError):
        Namespace("m", tp_rank=8, tp_size=8)
    with pytest.raises(ValueError):
        Namespace("m", dtype="bf/16")


def test_namespace_names_round_trip() -> None:
    assert Namespace.parse(NS.name) == NS
    assert NS.name == "meta-llama/Llama-3.1-8B/bf16/nhd/tp0of8"
    with pytest.raises(ValueError):
        Namespace.parse("just-a-model")


def test_key_validation() -> None:
    assert check_key(b"k" * 16) == b"k" * 16
    assert check_key(bytearray(32)) == bytes(32)
    for bad in (b"", b"k" * 15, b"k" * 17, b"k" * 33):
        with pytest.raises(ValueError):
            check_key(bad)
    with pytest.raises(TypeError):
        check_key("k" * 16)
