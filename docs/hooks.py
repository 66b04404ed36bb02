"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

At build time they add to the site what is generated rather than written:

- the configuration keys, on the page that holds the marker ``<!-- evoticket config -->``
  (``docs/configuration.md``): every key of the schema with its type, default, valid range and docstring, read
  by ``evoticket.config.describe_keys`` and printed by ``format_keys``, exactly as ``evoticket config``
  prints them;
- one API reference page per public module of evoticket (``reference/MODULE.md``, rendered by mkdocstrings from
  the docstrings), in the navigation under "API reference", grouped by subpackage;
- one page per experiment table committed in ``benchmarks/results/*-results.md`` (``experiments/NAME.md``), headed
  by the command that reproduces it, and the other Markdown notes of ``benchmarks/results/``;
- the repository files the pages link to outside ``docs/`` (figures, configuration files, scripts), copied
  under ``repo/`` so that the site links only to itself; a link to a file that does not exist is left as
  written, and the strict build fails on it.
"""

from __future__ import annotations

import importlib
import pkgutil
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG_MARKER = "<!-- evoticket config -->"
# a Markdown link or image target: ](target) or ](target#anchor)
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
RESULTS = ROOT / "benchmarks" / "results"


def public_modules(package: str = "evoticket") -> list[str]:
    """Every module of the package whose dotted name has no part starting with ``_`` (as tests/test_docs.py)."""
    walk = pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.")
    names = [package, *(m.name for m in walk if not any(p.startswith("_") for p in m.name.split(".")))]
    return sorted(names)


def experiment_pages() -> dict[str, Path]:
    """Site path -> Markdown file of ``benchmarks/results/`` shown as a page."""
    return {f"experiments/{path.stem}.md": path for path in sorted(RESULTS.glob("*.md"))}


def site_path(repo_path: str) -> str | None:
    """Where a repository file outside ``docs/`` is in the site; ``None`` if it does not exist."""
    if repo_path == "README.md":
        return "index.md"  # the README's quick start is the getting-started page
    if repo_path.startswith("benchmarks/results/") and repo_path.endswith(".md"):
        return f"experiments/{Path(repo_path).stem}.md"
    path = ROOT / repo_path
    if not path.is_file() or repo_path.endswith(".md"):
        return None
    return f"repo/{repo_path}"


def _outside_links(page_uri: str, markdown: str) -> dict[str, str]:
    """Link target as written -> repository path, for the links of a page that leave ``docs/``."""
    found = {}
    for match in LINK.finditer(markdown):
        target = match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            continue
        repo_path = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page_uri), target))
        if not repo_path.startswith("docs/"):
            found[target] = repo_path
    return found


# ---------------------------------------------------------------------------
# generated pages


def configuration_keys() -> str:
    """The configuration keys as Markdown: per section, a table and the text ``evoticket config SECTION`` prints."""
    from evoticket.config import describe_keys, format_keys

    entries = describe_keys()
    out = [
        "## Every key",
        "",
        "Generated from the schema when the site is built: `evoticket config` prints the same.",
        "",
    ]
    sections: dict[str, list] = {}
    for entry in entries:
        sections.setdefault(entry.section, []).append(entry)
    for section, keys in sections.items():
        title = f"[{section}]" if section else "Top level"
        out += [f"### {title}", ""]
        if keys[0].section_doc:
            out += [_escape(keys[0].section_doc), ""]
        out += ["| key | type | default | valid |", "|---|---|---|---|"]
        for e in keys:
            default = f"`{e.default_toml}`" if e.default_toml else "(none)"
            valid = _escape(e.valid.removeprefix("must be ")) if e.valid else ""
            out.append(f"| `{e.key}` | {e.type} | {_cell(default)} | {_cell(valid)} |")
        command = f"evoticket config {section}" if section else "evoticket config method"
        out += ["", f'```text title="{command}"', format_keys(keys, headers=bool(section)).rstrip("\n"), "```", ""]
    return "\n".join(out)


def _escape(text: str) -> str:
    """Docstring markup (``double backticks``) as Markdown code."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_page(module: str) -> str:
    """An API reference page: mkdocstrings renders the module from its docstrings."""
    return f"# {module}\n\n::: {module}\n"


def reference_index(modules: list[str]) -> str:
    """The API reference's landing page: the package overview and every module."""
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings (Google style) by mkdocstrings when the site is built: one page per public",
        "module of evoticket (each module whose dotted name has no part starting with `_`).",
        "",
    ]
    lines += [f"- [`{m}`]({m}.md): {_summary(m)}" for m in modules]
    return "\n".join(lines) + "\n"


def _summary(module: str) -> str:
    doc = importlib.import_module(module).__doc__ or ""
    first = doc.strip().split("\n\n")[0]
    return _escape(" ".join(first.split())).replace(":mod:", "").replace(":func:", "").replace(":class:", "")


def experiment_page(path: Path) -> str:
    """A page of ``benchmarks/results/``, headed by the command that reproduces it."""
    text = path.read_text()
    stem = path.stem.removesuffix("-results")
    config = ROOT / "configs" / f"{stem}.toml"
    if path.stem.endswith("-results") and config.is_file():
        comment = []
        for line in config.read_text().splitlines():  # the configuration file's opening comment: what it runs
            if not line.startswith("#"):
                break
            text = line.lstrip("# ").rstrip()
            if text and not text.startswith("evoticket experiment"):
                comment.append(text)
        head = (
            f"# Experiment `{stem}`\n\n"
            f"Reproduce: `evoticket experiment configs/{stem}.toml`, which writes this table as "
            f"`runs/{stem}/results.md` (the configuration: [configs/{stem}.toml](../repo/configs/{stem}.toml)). "
            f"This page is the run committed as `benchmarks/results/{path.name}`.\n\n" + " ".join(comment) + "\n"
        )
        return head + re.sub(r"\A# Results\n", "\n## Results\n", text)
    return text


def experiments_index(pages: dict[str, Path]) -> str:
    """The landing page of the experiment tables."""
    lines = [
        "# Experiment tables",
        "",
        "The tables the experiments wrote (`runs/NAME/results.md`), committed in `benchmarks/results/`; each page",
        "names the command that reproduces it.",
        "",
    ]
    for uri, path in pages.items():
        title = next((line[2:] for line in experiment_page(path).splitlines() if line.startswith("# ")), path.stem)
        lines.append(f"- [{title}]({Path(uri).name})")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# the hooks


def on_config(config):
    """Fill the "API reference" and "Experiment tables" entries of the navigation with the generated pages."""
    modules = public_modules()
    groups: dict[str, list] = {}
    for module in modules:
        top = ".".join(module.split(".")[:2])
        groups.setdefault(top, []).append({module: f"reference/{module}.md"})
    reference = ["reference/index.md", *({top: items} if len(items) > 1 else items[0] for top, items in groups.items())]
    experiments = ["experiments/index.md", *(uri for uri in experiment_pages())]

    def fill(items):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                for title, value in item.items():
                    if value == "reference/index.md":
                        item[title] = reference
                    elif value == "experiments/index.md":
                        items[i] = {title: experiments}
                    elif isinstance(value, list):
                        fill(value)

    fill(config["nav"])
    return config


def on_files(files: Files, config) -> Files:
    """Add the generated pages and the repository files the pages link to."""
    modules = public_modules()
    files.append(File.generated(config, "reference/index.md", content=reference_index(modules)))
    for module in modules:
        files.append(File.generated(config, f"reference/{module}.md", content=reference_page(module)))
    pages = experiment_pages()
    files.append(File.generated(config, "experiments/index.md", content=experiments_index(pages)))
    for uri, path in pages.items():
        files.append(File.generated(config, uri, content=experiment_page(path)))
    copied = {"configs/" + p.name for p in (ROOT / "configs").glob("*.toml")}  # experiment pages link them
    for file in list(files):
        if file.is_documentation_page() and file.abs_src_path:
            markdown = Path(file.abs_src_path).read_text()
            copied.update(_outside_links(file.src_uri, markdown).values())
    for repo_path in sorted(copied):
        target = site_path(repo_path)
        if target and target.startswith("repo/") and files.get_file_from_path(target) is None:
            files.append(File.generated(config, target, abs_src_path=str(ROOT / repo_path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Insert the configuration keys, and point the links that leave ``docs/`` to their copies in the site."""
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, configuration_keys())
    if page.file.abs_src_path is None:  # generated pages link inside the site already
        return markdown
    links = _outside_links(page.file.src_uri, markdown)

    def rewrite(match: re.Match) -> str:
        repo_path = links.get(match.group(2))
        target = site_path(repo_path) if repo_path else None
        if target is None:
            return match.group(0)  # not a repository file: the strict build names the broken link
        relative = posixpath.relpath(target, posixpath.dirname(page.file.src_uri) or ".")
        return f"{match.group(1)}{relative}{match.group(3) or ''}{match.group(4)}"

    return LINK.sub(rewrite, markdown)
