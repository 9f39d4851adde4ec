"""Griffe extension for the docs site: Sphinx cross-reference roles in docstrings as links.

camkit's docstrings use reStructuredText roles (``:func:`name```, ``:class:`~pkg.Name```),
which read well in the source and in ``help()``. mkdocstrings renders Markdown, so this
extension rewrites each role into an autorefs link ``[`Name`][full.path]``, resolving the
name from the docstring's own scope (its module's imports and members, its class's
members). A name that does not resolve, or that the site does not render, becomes plain
code. A reST ``Example::`` becomes ``Example:`` before its indented code block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|data|mod|attr|exc|obj):`(~?)([\w.]+)`")
LITERAL = re.compile(r"(?<=\S)::\n\n")


PACKAGES = ("camkit", "camkit_vit")


def _resolve(scope: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` seen from ``scope`` or its parents, else ``None``."""
    head, _, rest = name.partition(".")
    current: griffe.Object | None = scope
    while current is not None:
        try:
            found = current.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            current = current.parent
            continue
        return f"{found}.{rest}" if rest else found
    return name if "." in name else None


def _linkable(scope: griffe.Object, path: str) -> bool:
    """Whether the docs site renders ``path``: camkit's own objects, except class
    attributes without a docstring of their own (attrs fields, ``ClassVar`` names)."""
    if path.split(".", 1)[0] not in PACKAGES:
        return False
    try:
        target = scope.modules_collection[path]
    except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError):
        return False
    if target.is_alias:
        try:
            target = target.final_target
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return False
    if target.is_attribute and target.parent is not None and target.parent.is_class:
        return target.docstring is not None
    return True


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring into Markdown cross-references."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        scope = obj if obj.is_class or obj.is_module else (obj.parent or obj)

        def replace(match: re.Match[str]) -> str:
            short, name = match.group(1) == "~", match.group(2)
            title = name.rsplit(".", 1)[-1] if short else name
            target = _resolve(scope, name)
            if target is None or not _linkable(scope, target):
                return f"`{title}`"
            return f"[`{title}`][{target}]"

        value = ROLE.sub(replace, obj.docstring.value)
        # reST's "Example::" introduces an indented literal block; Markdown needs only ":"
        obj.docstring.value = LITERAL.sub(":\n\n", value)
