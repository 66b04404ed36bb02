"""The API reference: pdoc builds it from the docstrings, and a broken docstring fails the build.

pdoc itself only warns about what it cannot import or render. On top of that, this module checks what a
reader of the reference relies on: every public module, class and function has a docstring; every name in a
Google-style ``Args:`` section is a parameter of the signature; and no reStructuredText or stray section
heading shows up in the rendered page as typed.

Run as a script, it builds the reference into a folder (default ``docs/api``, see ``docs/README.md``) and
exits non-zero on any of those problems:

    python tests/test_docs.py docs/api
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pdoc
import pdoc.doc
import pdoc.extract
import pdoc.render

import evoticket

TEMPLATES = Path(__file__).resolve().parents[1] / "docs" / "templates"  # the navigation lists every submodule
ARGS_HEADERS = ("Args", "Arguments", "Parameters", "Params")
# reStructuredText that pdoc's google format shows as typed: a Sphinx role's ``~`` (short-name marker) and a
# paragraph ending in ``::`` (a literal block marker; in Markdown the indented block is code already)
RST_LEFTOVERS = {
    re.compile(r":[a-z]+:`~"): "Sphinx role with '~', which pdoc renders as a literal '~' (drop the '~')",
    re.compile(r"::[ \t]*\n[ \t]*\n"): "paragraph ends in '::', which pdoc renders literally (end it with ':')",
}
# pdoc's google format takes any line "Words:" followed by indented lines as a section (pdoc.docstrings.google);
# those it does not know as Google sections become a heading over a quoted, unformatted body
PDOC_SECTION = re.compile(r"^(?P<name>[A-Z][A-Z a-z]+):\n(?=(?:[ \t]*\n)*[ \t]+\S)", re.MULTILINE)
GOOGLE_SECTIONS = {
    *("Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments", "Attributes"),
    *("Returns", "Return", "Yields", "Yield", "Raises", "Raise"),
    *("Note", "Notes", "Warning", "Warnings", "See Also", "Todo", "References"),
}


def public_modules(package: str = "evoticket") -> list[str]:
    """Names of every module of the package whose dotted path has no part starting with ``_``.

    The walk goes over the files, not over ``__all__``: a package's ``__all__`` lists the names it re-exports,
    and ``pdoc evoticket`` alone would then leave out every subpackage the top level does not re-export.
    """

    def fail(name: str) -> None:
        raise ImportError(f"{name} does not import, so it has no reference page")

    walk = pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.", onerror=fail)
    names = [package, *(m.name for m in walk if not any(part.startswith("_") for part in m.name.split(".")))]
    return sorted(names)


def reference_specs(modules: list[str]) -> list[str]:
    """The module specs to hand to pdoc so that it renders each module once.

    pdoc walks a package spec into the submodules its ``__all__`` lists, and warns when a later spec adds a
    module again; a module already reached that way is therefore left out of the specs.
    """
    specs: list[str] = []
    reached: set[str] = set()
    for name in modules:
        if name not in reached:
            specs.append(name)
            reached.update(pdoc.extract.walk_specs([name]))
    return specs


def build_reference(output_directory: Path, show_source: bool = True) -> list[str]:
    """Render the HTML reference of every public module of evoticket.

    Args:
        output_directory: Where ``index.html``, ``evoticket.html`` and the module pages are written.
        show_source: Each function's source on its page (highlighted, most of the build's time); the test leaves it out.

    Returns:
        The warnings pdoc emitted, as text; empty when the build is clean.
    """
    pdoc.render.configure(docformat="google", search=True, show_source=show_source, template_directory=TEMPLATES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*reference_specs(public_modules()), output_directory=output_directory)
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def args_section_names(docstring: str) -> list[str]:
    """The parameter names listed in a Google-style ``Args:`` section.

    Handles ``name (type): ...`` entries, combined ``a, b: ...`` entries and ``*args`` / ``**kwargs``;
    the continuation lines of an entry (indented deeper than the entries) are skipped.

    Args:
        docstring: The cleaned docstring (``inspect.cleandoc``).

    Returns:
        The names, stars stripped, in the order they are listed.
    """
    names: list[str] = []
    lines = docstring.splitlines()
    i = 0
    while i < len(lines):
        header = lines[i].strip()
        if header.rstrip(":") not in ARGS_HEADERS or not header.endswith(":"):
            i += 1
            continue
        header_indent = len(lines[i]) - len(lines[i].lstrip())
        entry_indent = None
        i += 1
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            indent = len(line) - len(line.lstrip())
            if indent <= header_indent:
                break
            if entry_indent is None:
                entry_indent = indent
            if indent == entry_indent:
                head = line.strip().split(":", 1)[0]
                head = re.sub(r"\(.*\)", "", head)  # the type: name (int, optional)
                names.extend(part.strip().lstrip("*") for part in head.split(",") if part.strip())
            i += 1
    return names


def signature_problems(where: str, obj, docstring: str) -> list[str]:
    """The names of an ``Args:`` section that are not parameters of ``obj``'s signature.

    Args:
        where: ``module.qualname`` for the messages.
        obj: A function, method or class (then its constructor's signature, dataclass fields included).
        docstring: Its docstring.

    Returns:
        One message per documented name that does not exist.
    """
    documented = args_section_names(docstring)
    if not documented:
        return []
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):  # builtins and C extensions: nothing to compare with
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        # documented keywords may be what **kwargs accepts: only the positional names can be checked
        return []
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        params = {**params, **{f.name: f for f in dataclasses.fields(obj)}}
    return [f"{where}: Args lists {name!r}, which is not a parameter" for name in documented if name not in params]


def _public(doc: pdoc.doc.Doc) -> bool:
    return not doc.name.startswith("_") or doc.name == "__init__"  # pdoc shows a constructor as the class's


def _documented_objects(modules: list[str]) -> Iterator[tuple[str, pdoc.doc.Doc]]:
    """``(module.qualname, doc)`` for every public module, class, function and variable pdoc documents, each once."""
    seen: set[tuple[str, str]] = set()
    for name in modules:
        module = pdoc.doc.Module.from_name(name)
        yield name, module
        stack = [m for m in module.members.values() if _public(m)]
        while stack:
            doc = stack.pop()
            if not isinstance(doc, pdoc.doc.Class | pdoc.doc.Function | pdoc.doc.Variable):
                continue
            origin = doc.taken_from  # (defining module, qualname): a re-export is the same object
            if origin in seen:
                continue
            seen.add(origin)
            yield ".".join(origin), doc
            if isinstance(doc, pdoc.doc.Class):
                stack.extend(m for m in doc.own_members if _public(m))


def _own_docstring(doc: pdoc.doc.Doc) -> str:
    """The docstring a reader sees, without the placeholders Python writes for undocumented classes."""
    if isinstance(doc, pdoc.doc.Variable):
        return doc.docstring  # the ``"""..."""`` under the assignment, as pdoc reads it from the source
    if isinstance(doc, pdoc.doc.Function):
        return inspect.getdoc(doc.obj) or ""  # a method overriding a documented one inherits its docstring
    text = inspect.cleandoc(doc.obj.__doc__ or "")  # a class's or module's own, never inherited
    if (
        isinstance(doc, pdoc.doc.Class)
        and dataclasses.is_dataclass(doc.obj)
        and text.startswith(doc.obj.__name__ + "(")
    ):
        return ""  # dataclasses generate "Name(field: type, ...)" for a class without a docstring
    return text


def docstring_problems(modules: list[str]) -> list[str]:
    """Every missing docstring, ``Args:`` name that is not a parameter and reST leftover, in the given modules.

    Args:
        modules: Dotted module names, as ``public_modules`` gives them.

    Returns:
        One message per problem, each naming ``module.qualname``.
    """
    problems = []
    for where, doc in _documented_objects(modules):
        own = _own_docstring(doc)
        problems.extend(f"{where}: {why}" for pattern, why in RST_LEFTOVERS.items() if pattern.search(own))
        problems.extend(
            f"{where}: the line {m[0].strip()!r} before an indented block renders as a section heading over a "
            "quoted body (reword it, e.g. 'X, for example:', or make it a Google section)"
            for m in PDOC_SECTION.finditer(own)
            if m["name"] not in GOOGLE_SECTIONS
        )
        if isinstance(doc, pdoc.doc.Variable):
            continue  # constants and fields: a docstring is welcome, not required
        if not own.strip():
            if doc.name != "__init__":  # a constructor may leave its documentation to the class
                problems.append(f"{where}: no docstring")
            continue
        if isinstance(doc, pdoc.doc.Function | pdoc.doc.Class):
            problems.extend(signature_problems(where, doc.obj, doc.docstring))
    return problems


def test_reference_builds_without_warnings(tmp_path):
    """pdoc renders every public module, with the package overview as landing page, and warns about nothing."""
    caught = build_reference(tmp_path, show_source=False)
    assert not caught, "pdoc warned:\n" + "\n".join(caught)
    pages = {p.relative_to(tmp_path).with_suffix("").as_posix().replace("/", ".") for p in tmp_path.rglob("*.html")}
    missing = set(public_modules()) - pages
    assert not missing, f"no page for {sorted(missing)}"
    landing = (tmp_path / "evoticket.html").read_text()
    assert "evolve lottery tickets" in landing and "Main entry points" in landing
    linked = set(re.findall(r'<li><a href="evoticket/(\w+)\.html">', landing))
    children = {name.split(".")[1] for name in public_modules() if name.count(".") == 1}
    assert linked == children, f"the landing page links {sorted(linked)}, not every submodule {sorted(children)}"


def test_docstrings_are_complete_and_match_signatures():
    """Every public module, class and function has a docstring, and its ``Args:`` names exist."""
    problems = docstring_problems(public_modules())
    assert not problems, f"{len(problems)} broken docstring(s):\n" + "\n".join(problems)


def _broken(alpha, *rest, beta=1):
    """A function whose docstring documents a parameter it does not have.

    Args:
        alpha: Exists.
        *rest: Exists.
        beta, gamma (int): ``beta`` exists, ``gamma`` does not.
    """


def _fine(alpha, *rest, beta=1):
    """A function whose docstring matches its signature.

    Args:
        alpha (int): Exists, with
            a continuation line that looks like: an entry.
        *rest: Exists.
        beta: Exists.

    Returns:
        Nothing: not an argument.
    """


@dataclasses.dataclass
class _Fields:
    """A dataclass documented through its fields.

    Args:
        size: A field.
    """

    size: int = 1


PROBE = '''
"""A module whose docstrings are broken in every way the checks know.

Usage::

    probe.documented(1)
"""


def undocumented(x):
    pass


def _private(y):
    pass


def documented(alpha, **options):
    """Documented, with keyword options.

    Args:
        alpha: Exists.
        colour: One of the ``**options``: not checkable, so accepted.
    """


def wrong_name(alpha):
    """Documents a parameter that does not exist, and cites :func:`~probe.documented`.

    Args:
        alpah: A typo.
    """


class Box:
    """A class with an undocumented public method.

    Example:

        Box(1).open()
    """

    def __init__(self, size):
        """Make a box.

        Args:
            sise: A typo.
        """
        self.size = size

    def open(self):
        pass

    def _close(self):
        pass
'''


def test_checker_catches_a_broken_docstring(tmp_path, monkeypatch):
    """The checks are not vacuous: each kind of broken docstring in a probe module is caught, by name."""
    assert args_section_names(inspect.getdoc(_broken)) == ["alpha", "rest", "beta", "gamma"]
    assert signature_problems("tests._broken", _broken, inspect.getdoc(_broken)) == [
        "tests._broken: Args lists 'gamma', which is not a parameter"
    ]
    assert signature_problems("tests._fine", _fine, inspect.getdoc(_fine)) == []
    assert signature_problems("tests._Fields", _Fields, inspect.getdoc(_Fields)) == []

    (tmp_path / "probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "probe", raising=False)
    problems = docstring_problems(["probe"])
    expected = [
        "probe: paragraph ends in '::'",
        "probe.undocumented: no docstring",
        "probe.wrong_name: Sphinx role with '~'",
        "probe.wrong_name: Args lists 'alpah', which is not a parameter",
        "probe.Box: the line 'Example:' before an indented block",
        "probe.Box.open: no docstring",
        "probe.Box.__init__: Args lists 'sise', which is not a parameter",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for want in expected:
        assert any(p.startswith(want) for p in problems), f"not caught: {want}\n" + "\n".join(problems)
    monkeypatch.delitem(sys.modules, "probe")


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/api")
    found = build_reference(out) + docstring_problems(public_modules())
    print("\n".join(found), file=sys.stderr)
    print(f"API reference of evoticket {evoticket.__version__}: {out / 'index.html'} ({len(found)} problem(s))")
    sys.exit(1 if found else 0)
