"""The tutorials (``docs/tutorials/``) and the extending page run as written.

Each page's fenced blocks are taken in order, as a reader would take them, in an empty folder:

- a block with a title (```` ```toml title="equal-compute.toml" ````) is a file: it is written there under its
  title, a ``--8<-- "PATH"`` line replaced by the repository file it includes (what the site shows);
- a ``bash`` block runs in bash (``set -euo pipefail``), with this Python's ``bin`` first on ``PATH``, so
  ``evoticket`` and ``python`` are the installed ones;
- a ``python`` block runs as a script of its own;
- any other block (``text``: an output) is shown, not run.

The tutorials' settings are tiny, so each page runs in seconds; a page whose code no longer runs, or whose output
lost what the page explains, fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r'^```(?P<lang>\w+)(?: title="(?P<title>[^"]+)")?\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$', re.MULTILINE)
PAGES = {
    "tutorials/first-campaign.md": ["Verdict: ", "beats dense from scratch:", "individuals; the best:"],
    "tutorials/own-deap-search.md": ["max validation accuracy: generation 0", "parent -> child edges"],
    "tutorials/equal-compute.md": ["experiment equal-compute: 6 cells", "of the budget"],
    "extending.md": ["individuals made by mutMaskRoll"],
}


def blocks(page: Path) -> list[tuple[str, str | None, str]]:
    """The fenced blocks of a Markdown page, in order: ``(language, title or None, body)``."""
    found = []
    for match in FENCE.finditer(page.read_text()):
        body = SNIPPET.sub(lambda m: (ROOT / m.group("path")).read_text(), match.group("body"))
        found.append((match.group("lang"), match.group("title"), body))
    return found


def run_page(page: Path, cwd: Path) -> str:
    """Run a page's blocks in ``cwd``; returns their output (stdout and stderr). Fails on a block that fails."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MPLBACKEND": "Agg",
    }
    output = []
    for i, (lang, title, body) in enumerate(blocks(page)):
        if title:
            (cwd / title).parent.mkdir(parents=True, exist_ok=True)
            (cwd / title).write_text(body)
            continue
        if lang == "bash":
            command = ["bash", "-c", "set -euo pipefail\n" + body]
        elif lang == "python":
            script = cwd / f"block_{i}.py"
            script.write_text(body)
            command = [sys.executable, str(script)]
        else:
            continue
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{page.name}, block {i} ({lang}) failed:\n{body}\n{proc.stdout}\n{proc.stderr}"
        output.append(proc.stdout + proc.stderr)
    return "\n".join(output)


def test_blocks_are_read_as_the_site_shows_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        'Text.\n\n```toml title="a/b.toml"\nx = 1\n```\n\n```bash\necho hi\n```\n\n```text\nout\n```\n\n'
        '```python title="x.py"\n--8<-- "ruff.toml"\n```\n'
    )
    assert [(lang, title) for lang, title, _ in blocks(page)] == [
        ("toml", "a/b.toml"),
        ("bash", None),
        ("text", None),
        ("python", "x.py"),
    ]
    assert blocks(page)[3][2].rstrip() == (ROOT / "ruff.toml").read_text().rstrip()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_runs_as_written(name, tmp_path):
    page = ROOT / "docs" / name
    runnable = [lang for lang, title, _ in blocks(page) if not title and lang in ("bash", "python")]
    assert runnable, f"{name} has no block to run"
    output = run_page(page, tmp_path)
    for expected in PAGES[name]:
        assert expected in output, f"{name}: {expected!r} not in its output:\n{output[-3000:]}"
