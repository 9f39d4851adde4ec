"""The JET overlay renderer, kept importable from here: it is the ``"jet"`` member of
:mod:`camkit.render.colormap`."""

from camkit.render.colormap import JetRenderer

__all__ = ["JetRenderer"]
