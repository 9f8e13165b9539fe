"""Every fenced ```python block of README.md runs as written: each in a fresh interpreter, in an
empty temporary directory (so files it writes land there), and exits with status 0."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the opening fence, code)`` for each fenced python block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_blocks_found():
    assert len(BLOCKS) >= 2  # the README's examples: the ten lines and the scikit-learn one
    assert python_blocks("x\n```python\nprint(1)\n```\n```bash\nls\n```\n") == [(2, "print(1)\n")]


@pytest.mark.slow  # ~30 s: the scikit-learn example trains a small denoiser
@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "SCORELID_"))}
    env["OMP_NUM_THREADS"] = "2"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"README.md block at line {line} failed:\n{proc.stderr[-3000:]}"
