"""camkit's compatibility layer: the seed toolkit's API and classification-project checkpoints.

- :mod:`camkit.compat.seed`: the seed toolkit's functions (:func:`generate_gradcam`,
  :func:`generate_gradcam_batch`, :func:`quick_gradcam`), with its parameter names and
  defaults, results and preprocessing;
- :mod:`camkit.compat.checkpoints`: classifiers rebuilt from the files the classification
  projects save: class files, backbone names, weights-only checkpoints, and the checkpoint
  fitted to the model.

Both are built on the public engine (:class:`camkit.Explainer`) and on the folder tool of
:mod:`camkit.tools.batch`; the engine does not depend on them.
"""

from camkit.compat.checkpoints import (
    SEED_ALIASES,
    build_backbone,
    load_classifier,
    load_state_dict,
    read_class_names,
)
from camkit.compat.seed import (
    generate_gradcam,
    generate_gradcam_batch,
    make_explainer,
    quick_gradcam,
)

__all__ = [
    "SEED_ALIASES",
    "build_backbone",
    "generate_gradcam",
    "generate_gradcam_batch",
    "load_classifier",
    "load_state_dict",
    "make_explainer",
    "quick_gradcam",
    "read_class_names",
]
