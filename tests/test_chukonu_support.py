"""The README's list of what chukonu supports is what the code says, and every PySpark function is accounted for."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chukonu import support

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")


def test_readme_section_is_current():
    with open(README, encoding="utf-8") as f:
        section = support.current_section(f.read())
    assert section is not None, "README.md lost its chukonu-support markers"
    assert section == support.render_markdown(), "run: python -m chukonu support --write README.md"


def test_cli_check_and_write(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{support.BEGIN}\nold list\n{support.END}\n")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    check = subprocess.run([sys.executable, "-m", "chukonu", "support", "--check", str(stale)], env=env,
                           capture_output=True, text=True)
    assert check.returncode == 1 and "not current" in check.stderr
    write = subprocess.run([sys.executable, "-m", "chukonu", "support", "--write", str(stale)], env=env,
                           capture_output=True, text=True)
    assert write.returncode == 0 and '"changed": true' in write.stdout
    assert support.render_markdown() in stale.read_text() and stale.read_text().startswith("# x\n")
    again = subprocess.run([sys.executable, "-m", "chukonu", "support", "--check", str(stale)], env=env)
    assert again.returncode == 0
    missing = subprocess.run([sys.executable, "-m", "chukonu", "support", "--write", str(tmp_path / "none.md")],
                             env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "chukonu support:" in missing.stderr and "Traceback" not in missing.stderr


def test_every_pyspark_function_is_supported_or_skipped_with_a_reason():
    PF = pytest.importorskip("pyspark.sql.functions")
    names = {n for n in dir(PF) if not n.startswith("_") and callable(getattr(PF, n))
             and getattr(getattr(PF, n), "__module__", "").startswith("pyspark.sql.functions")}
    supported = set(support.supported_functions())
    assert not (names - supported - set(support.SKIPPED_FUNCTIONS)), "unaccounted PySpark functions"
    assert not (supported & set(support.SKIPPED_FUNCTIONS))
    assert len(supported & names) >= 300


def test_skipped_functions_raise_naming_the_call_and_the_reason():
    from chukonu.sql import functions as F
    with pytest.raises(NotImplementedError, match=r"pyspark.sql.functions.parse_json .*VARIANT"):
        F.parse_json("x")
    with pytest.raises(NotImplementedError, match=r"pyspark.sql.functions.no_such_function is not supported"):
        F.no_such_function("x")
