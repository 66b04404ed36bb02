"""A griffe extension for the documentation site: the docstrings' Sphinx roles as Markdown.

evoticket's docstrings name other objects as pdoc reads them, with Sphinx roles (``:func:`run_campaign```,
``:mod:`.ga```, ``:data:`evoticket.methods.METHODS```). mkdocstrings would show the role as typed; this
extension rewrites each one before rendering: into a cross-reference (``[`run_campaign`][evoticket.campaign.run.
run_campaign]``) when the name resolves, from the object's scope, to a public object the API reference renders
(it has a docstring, or is a module), else into plain code (`` `name` ``). mkdocs.yml names it in the python
handler's ``extensions``.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc|const):`(?P<name>[^`]+)`")


def _lookup(scope: griffe.Object, name: str) -> griffe.Object | None:
    """The object ``name`` refers to from ``scope``: relative (``.ga``), absolute, or a member of an enclosing scope."""
    collection = scope.modules_collection
    if name.startswith("."):
        module = scope.module
        base = module if module.is_init_module else module.parent
        for _ in range(len(name) - len(name.lstrip(".")) - 1):
            base = base.parent
        return _get(collection, f"{base.path}.{name.lstrip('.')}")
    found = _get(collection, name)
    if found is not None:
        return found
    head = name.partition(".")[0]
    for outer in (scope, *_parents(scope)):
        if head in outer.members:
            return _get(collection, f"{outer.path}.{name}")
    return None


def _parents(obj: griffe.Object):
    while obj.parent is not None:
        obj = obj.parent
        yield obj


def _get(collection, path: str) -> griffe.Object | None:
    try:
        obj = collection.get_member(path)
    except Exception:  # not loaded, not an object, an alias that does not resolve
        return None
    try:
        return obj.final_target if obj.is_alias else obj
    except Exception:
        return None


def _rendered(obj: griffe.Object) -> bool:
    """Whether the API reference renders ``obj`` (and so has an anchor for it)."""
    if any(part.startswith("_") for part in obj.path.split(".")) or not obj.path.startswith("evoticket"):
        return False
    return obj.is_module or bool(obj.docstring)


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        """Rewrite the docstrings of ``pkg`` and of everything it holds, once the whole package is loaded."""
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(lambda m, o=obj: self._replace(o, m.group("name")), obj.docstring.value)
            stack.extend(member for member in obj.members.values() if not member.is_alias)

    @staticmethod
    def _replace(scope: griffe.Object, name: str) -> str:
        target = _lookup(scope, name.lstrip("~"))
        if target is not None and _rendered(target):
            return f"[`{name}`][{target.path}]"
        return f"`{name}`"
