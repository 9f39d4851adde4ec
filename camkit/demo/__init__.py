"""camkit's embedded demo: procedurally drawn shape scenes and a small CNN trained on them.

Quick use::

    from camkit import Explainer
    from camkit.demo import load_model, make_scene

    image, label, boxes = make_scene(1_000_000)
    model = load_model()
    explanation = Explainer(model, class_names=model.class_names).explain(image)

The shipped weights were trained by ``python -m camkit.demo.train`` on seeds below
1_000_000; use seeds from 1_000_000 up for held-out scenes.
"""

from camkit.demo.model import DemoNet, load_model
from camkit.demo.scenes import CLASS_NAMES, SCENE_SIZE, make_scene

__all__ = ["CLASS_NAMES", "SCENE_SIZE", "DemoNet", "load_model", "make_scene"]
