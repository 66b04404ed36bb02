"""The documentation site: ``mkdocs build --strict`` passes, and what it generates is complete.

The site (``mkdocs.yml``, pages in ``docs/``, generated pages from ``docs/hooks.py``) is built once into a
temporary folder; any MkDocs warning (a broken link or anchor, a page missing from the navigation, a docstring
mkdocstrings cannot render) fails the build and so the test.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evoticket.config import describe_keys, format_keys

ROOT = Path(__file__).resolve().parents[1]
HREF = re.compile(r"""(?:href|src)="([^"]*)\"""")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with ``mkdocs build --strict`` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0 and not warnings, "mkdocs build --strict failed:\n" + "\n".join(
        warnings or proc.stderr.splitlines()[-30:]
    )
    return out


def _text(page: Path) -> str:
    """A built page's text: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_site_builds_strict(site):
    for page in ("index.html", "configuration.html", "reference/index.html"):
        assert (site / page).is_file(), page


def test_configuration_page_has_every_key(site):
    text = _text(site / "configuration.html")
    for entry in describe_keys():
        first_line = format_keys([entry], headers=False).splitlines()[0]  # "ga.population = 8  (integer, >= 2)"
        assert first_line in text, f"{entry.key} is missing from the generated configuration page"
    sections: dict[str, list] = {}
    for entry in describe_keys():
        sections.setdefault(entry.section, []).append(entry)
    for section, entries in sections.items():  # what `evoticket config SECTION` prints, verbatim
        printed = format_keys(entries, headers=bool(section)).rstrip("\n")
        assert printed in text, f"the page does not show `evoticket config {section or 'method'}` as it prints"


def test_every_public_module_has_a_reference_page(site):
    hooks = _hooks()
    for module in hooks.public_modules():
        page = site / "reference" / f"{module}.html"
        assert page.is_file(), module
        assert f'id="{module}"' in page.read_text(), f"mkdocstrings rendered nothing for {module}"


def test_links_stay_inside_the_site(site):
    broken, outside = [], []
    for page in site.rglob("*.html"):
        if page.name == "404.html":  # served at any depth, it links from the site's root: /assets/...
            continue
        for target in HREF.findall(page.read_text()):
            if target.startswith(("http:", "https:", "//")):
                outside.append(f"{page.relative_to(site)}: {target}")
            elif target and not target.startswith(("#", "data:", "mailto:")):
                path = (page.parent / target.split("#")[0].split("?")[0]).resolve()
                if not path.exists():
                    broken.append(f"{page.relative_to(site)}: {target}")
    assert not outside, "links outside the repository:\n" + "\n".join(outside[:20])
    assert not broken, "broken links:\n" + "\n".join(broken[:20])


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_leave_a_missing_file_for_the_strict_build_to_report():
    hooks = _hooks()
    links = hooks._outside_links(
        "figures.md", "![a](../benchmarks/nope.png) [b](cli.md) [c](../configs/default.toml#x)"
    )
    assert links == {"../benchmarks/nope.png": "benchmarks/nope.png", "../configs/default.toml": "configs/default.toml"}
    assert hooks.site_path("benchmarks/nope.png") is None
    assert hooks.site_path("configs/default.toml") == "repo/configs/default.toml"
    assert hooks.site_path("README.md") == "index.md"
