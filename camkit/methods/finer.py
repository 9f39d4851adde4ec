"""Finer-CAM: explain how the target class differs from its nearest classes."""

from __future__ import annotations

import attrs
from torch import Tensor

from camkit.errors import ConfigurationError, MethodError, TargetError
from camkit.methods.base import CAMMethod
from camkit.methods.context import MethodContext
from camkit.methods.gradcam import GradCAM

__all__ = ["ComparisonScore", "FinerCAM", "nearest_classes"]


@attrs.frozen(eq=False)
class ComparisonScore:
    """The score Finer-CAM explains, a differentiable function of the logits ``(B, K)``::

        s = Σ_j p_j · (y_c − α·y_j) / (Σ_j p_j + 1e-9)

    over the comparison classes ``j`` of each image, with ``p = softmax(logits)`` (the
    weights are differentiated too).

    Attributes:
        main: the explained class of each image ``(B,)``.
        nearest: the comparison classes of each image ``(B, k)``.
        alpha: the comparison strength ``α``.
    """

    main: Tensor
    nearest: Tensor
    alpha: float

    def __call__(self, logits: Tensor) -> Tensor:
        main = logits.gather(1, self.main[:, None].to(logits.device))
        nearest = self.nearest.to(logits.device)
        weights = logits.softmax(dim=1).gather(1, nearest)
        differences = main - self.alpha * logits.gather(1, nearest)
        return (weights * differences).sum(dim=1) / (weights.sum(dim=1) + 1e-9)


def nearest_classes(logits: Tensor, main: Tensor, count: int) -> Tensor:
    """The ``count`` classes whose logits are closest to each image's ``main`` class logit
    (the class itself excluded; ties to the lower index), ``(B, count)``."""
    distance = (logits - logits.gather(1, main[:, None])).abs()
    distance = distance.scatter(1, main[:, None], float("inf"))
    return distance.argsort(dim=1, stable=True)[:, :count]


class FinerCAM(CAMMethod):
    """Finer-CAM (Zhang, Gu, Chowdhury, Mai, Carlyn, Berger-Wolf, Su & Chao, "Finer-CAM:
    Spotting the Difference Reveals Finer Details for Visual Explanation", CVPR 2025,
    arXiv 2501.11309).

    A CAM of the target's logit also lights up what the target shares with similar classes.
    Finer-CAM explains the difference from them instead: with ``c`` the explained class and
    ``J`` the ``k`` classes whose logits are closest to ``y_c``, the base method (Grad-CAM by
    default) explains::

        s = Σ_{j∈J} p_j · (y_c − α·y_j) / (Σ_{j∈J} p_j + 1e-9),      p = softmax(y)

    so for Grad-CAM ``w_k = mean_ij ∂s/∂A^k_ij`` and ``CAM = ReLU(Σ_k w_k · A^k)``. ``α = 0``
    gives the base method's map of ``y_c``; larger ``α`` stresses finer differences.

    Args:
        base: the method that maps the comparison score; it must read only the layer's
            activations and gradients (Grad-CAM, Grad-CAM++ and the like), not run the model
            again. Default :class:`~camkit.GradCAM`.
        comparisons: ``k``, the number of nearest classes (3 by default, as in
            pytorch-grad-cam; fewer when the model has fewer other classes).
        alpha: ``α``, the comparison strength (1 by default).

    Targets: class indices (``None`` explains the predicted class, as the reference does); a
    callable target has no class to compare and raises :class:`~camkit.errors.TargetError`.

    Cost: the pipeline's forward, and one more backward through the part of the model after
    the layer for the comparison score (:meth:`~camkit.methods.MethodContext.with_score`); no
    second forward.

    Departures. The paper writes the comparison as ``y_c − α·y_d`` for one similar class
    ``d``, several of them combined by their similarity; camkit follows the reference
    (pytorch-grad-cam 1.5.5+ ``FinerCAM`` with ``FinerWeightedTarget``): the ``k`` nearest
    logits, weighted by their softmax probabilities, the weights differentiated along with
    the logits. Its maps equal pytorch-grad-cam's.
    """

    name = "finercam"
    needs_gradients = True  # the forward keeps its graph for the comparison's gradients

    def __init__(
        self, base: CAMMethod | None = None, comparisons: int = 3, alpha: float = 1.0
    ) -> None:
        base = GradCAM() if base is None else base
        if not isinstance(base, CAMMethod) or isinstance(base, FinerCAM):
            raise ConfigurationError(
                f"FinerCAM base must be a CAMMethod instance other than FinerCAM, got {base!r}"
            )
        if not base.needs_gradients or base.extra_passes or base.needs_higher_order:
            raise ConfigurationError(
                f"FinerCAM base {type(base).__name__} must read only the layer's activations "
                "and gradients (needs_gradients = True, no extra passes or higher order); "
                "use GradCAM, GradCAMPlusPlus or another gradient-weighted method"
            )
        if isinstance(comparisons, bool) or not isinstance(comparisons, int) or comparisons < 1:
            raise ConfigurationError(
                f"FinerCAM comparisons must be an int >= 1, got {comparisons!r}"
            )
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha != alpha:
            raise ConfigurationError(f"FinerCAM alpha must be a real number, got {alpha!r}")
        self.base = base
        self.comparisons = comparisons
        self.alpha = float(alpha)

    def compute(self, context: MethodContext) -> Tensor:
        main = context.score.indices
        if main is None:
            raise TargetError(
                "Finer-CAM compares a class with its nearest classes; a callable target has "
                "no class. Give class indices (or None for the predicted class)."
            )
        logits = context.logits.float()
        others = logits.shape[1] - 1
        if others < 1:
            raise MethodError(
                "Finer-CAM compares the target class with other classes; the model has "
                f"{logits.shape[1]} class"
            )
        main = main.to(logits.device)
        nearest = nearest_classes(logits, main, min(self.comparisons, others))
        return self.base.compute(context.with_score(ComparisonScore(main, nearest, self.alpha)))

    def __repr__(self) -> str:
        return (
            f"FinerCAM(base={self.base!r}, comparisons={self.comparisons!r}, alpha={self.alpha!r})"
        )
