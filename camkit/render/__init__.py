"""Renderers: the :class:`Renderer` abstraction and the built-in JET overlay."""

from camkit.render.base import Renderer, check_render_inputs
from camkit.render.jet import JetRenderer

__all__ = ["JetRenderer", "Renderer", "check_render_inputs"]
