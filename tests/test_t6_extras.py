"""An install without an extra says which extra to install, in one line, never with a traceback.

``pip install superfs`` has no pyarrow, torch, numba or fsspec. Each run
here blocks the extra's modules in a fresh interpreter (``sys.modules[m] =
None``: importing one fails as if it were not installed) and uses what
needs them: a command prints one line naming ``pip install
'superfs[EXTRA]'`` and exits 2; an import raises ModuleNotFoundError with
that line. The base packages still import with every extra blocked. (The
deployment image, a real install without extras, is checked the same way in
tests/test_t6_deploy_compose.py.)
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from superfs.extras import EXTRAS

ALL_OPTIONAL = sorted({m for mods in EXTRAS.values() for m in mods})


def without(modules: list[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys\nfor _m in {modules!r}:\n    sys.modules[_m] = None\n"
    return subprocess.run([sys.executable, "-P", "-c", prelude + code, *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def one_line_naming(r: subprocess.CompletedProcess[str], extra: str) -> None:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"pip install 'superfs[{extra}]'" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_the_base_packages_import_with_every_extra_missing():
    r = without(ALL_OPTIONAL, "import superfs, superfs.client, superfs.cli.main, chukonu, ckpt, kvserve\n"
                              "import chukonu.cli, ckpt.cli, kvserve.cli\nprint('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_chukonu_dedup_without_its_extra(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "a b c"}\n')
    r = without(["pyarrow", "pyarrow.parquet"], "from chukonu.cli import main\nsys.exit(main(sys.argv[1:]))",
                "dedup", str(tmp_path / "in.jsonl"), str(tmp_path / "out"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line_naming(r, "chukonu")


@pytest.mark.parametrize("module, extra", [("chukonu.sql", "chukonu"), ("chukonu.dedup", "chukonu"),
                                           ("chukonu.rdd", "chukonu"), ("ckpt.dcp", "torch"),
                                           ("superfs.fsspec_fs", "fsspec")])
def test_importing_what_needs_an_extra_names_it(module, extra):
    r = without(list(EXTRAS[extra]), f"try:\n    import {module}\nexcept ModuleNotFoundError as e:\n"
                                     "    print(e)\n    sys.exit(3)")
    assert r.returncode == 3, r.stderr  # a ModuleNotFoundError, as callers that catch ImportError expect
    assert f"pip install 'superfs[{extra}]'" in r.stdout, r.stdout


def test_ckpt_torch_coordinator_without_torch():
    r = without(["torch", "torch.distributed"], "import ckpt\ntry:\n    ckpt.TorchCoordinator()\n"
                                                "except ModuleNotFoundError as e:\n    print(e)\n    sys.exit(3)")
    assert r.returncode == 3 and "pip install 'superfs[torch]'" in r.stdout, r.stdout + r.stderr


def test_kvserve_numba_kernel_without_its_extra(tmp_path):
    r = without(["numba"], "from kvserve.cli import main\nsys.exit(main(sys.argv[1:]))",
                "serve", "--attention-kernel", "numba", "--ready-file", str(tmp_path / "ready"))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    one_line_naming(r, "kvserve")
    assert not (tmp_path / "ready").exists()  # refused before serving
