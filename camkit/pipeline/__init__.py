"""The explanation pipeline, one step per module::

    inputs ──prepare──▶ PreparedBatch ──capture──▶ Forward ──method──▶ maps ──fuse──▶
           (prepare.py)                (camkit.capture)  (MethodContext)    (fusion.py)
    ──▶ ExplanationBatch ──place (lazy)──▶ maps on the input grid / on the originals
        (camkit.explanation)  (place.py)

:func:`~camkit.pipeline.run.run_pipeline` (``run.py``) strings the steps together; every
entry point (``Explainer.explain``, ``explain_batch``, ``explain_classes``, folder runs, the
CLI, the metrics' inputs) goes through it. (``run.py`` is imported from its module, not from
this package, because the results it builds import the place step.)
"""

from camkit.pipeline.fusion import FUSIONS, fuse_layers
from camkit.pipeline.place import maps_on_input, maps_on_originals
from camkit.pipeline.prepare import PreparedBatch, prepare_batch

__all__ = [
    "FUSIONS",
    "PreparedBatch",
    "fuse_layers",
    "maps_on_input",
    "maps_on_originals",
    "prepare_batch",
]
