"""Principal-component methods: Eigen-CAM, Eigen-Grad-CAM and KPCA-CAM.

Each image's ``(C, h, w)`` map is read as ``N = h·w`` points (the positions) in ``C``
dimensions (the channels). Each channel is centred over the positions, as pytorch-grad-cam
does, and the map is the projection of every position onto the first principal component:
of the points themselves (Eigen-CAM, Eigen-Grad-CAM), or of their images under a kernel
(KPCA-CAM).

The decomposition runs batched on the model's device, in ``float64`` on CPU and CUDA
(``float32`` on other devices, which may lack ``float64``), and the map is returned in the
activations' dtype.

**camkit's sign rule.** A principal component is defined up to its sign: ``v`` and ``-v`` are
equally valid, and which one a solver returns depends on the library, its version and the
hardware. After the final ReLU the wrong sign shows the complement of the map. camkit orients
every projection so that **its value of largest magnitude is positive** (on an exact tie, the
first such position in row-major order decides). This is the correction of Seg-Eigen-CAM
(Chung & Ying, Applied Sciences 15(13):7562, 2025, Eq. 13: flip the map when
``|min| > |max|``), which pytorch-grad-cam 1.5.7 ships as
``get_2d_projection_with_sign_correction`` but does not apply in ``EigenCAM`` or
``EigenGradCAM``: their maps keep the sign numpy's SVD returns. It is also scikit-learn's
``svd_flip`` convention, which the reference's ``KPCA_CAM`` inherits from ``KernelPCA``. So
camkit's Eigen-CAM and Eigen-Grad-CAM equal the reference's maps up to the SVD's sign, and
its KPCA-CAM equals the reference's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from camkit.errors import ConfigurationError, MethodError
from camkit.methods.base import CAMMethod

if TYPE_CHECKING:
    from camkit.methods.context import MethodContext

__all__ = [
    "KPCACAM",
    "EigenCAM",
    "EigenGradCAM",
    "kernel_principal_projection",
    "orient",
    "principal_projection",
]

_KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")


def _solver_dtype(device: torch.device) -> torch.dtype:
    """``float64`` where the device has it for linear algebra (CPU, CUDA), else ``float32``."""
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def _centred_points(maps: Tensor, label: str) -> Tensor:
    """``(B, C, h, w)`` -> ``(B, h·w, C)`` in the solver's dtype, each channel centred over
    the positions."""
    if maps.ndim != 4:
        raise MethodError(f"{label} needs (B, C, h, w) maps, got shape {tuple(maps.shape)}")
    if not bool(torch.isfinite(maps).all()):
        raise MethodError(
            f"{label}: the maps to decompose hold NaN or infinite values; check the model's "
            "activations (and gradients) at the layer, or choose another layer"
        )
    points = maps.flatten(2).transpose(1, 2).to(_solver_dtype(maps.device))
    return points - points.mean(dim=1, keepdim=True)


def orient(projections: Tensor) -> Tensor:
    """camkit's sign rule: each row of ``projections`` ``(B, N)`` multiplied by ``±1`` so that
    its value of largest magnitude is positive (the first one, on an exact tie)."""
    index = projections.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(projections.gather(1, index))
    return projections * torch.where(sign == 0, torch.ones_like(sign), sign)


def principal_projection(maps: Tensor) -> Tensor:
    """Each image's positions projected onto their first principal component.

    With ``X`` the ``(h·w, C)`` matrix of an image's map, each channel (column) centred,
    and ``v`` its first right singular vector, the projection is ``X·v``, oriented by
    :func:`orient`.

    Args:
        maps: ``(B, C, h, w)``, finite.

    Returns:
        ``(B, h, w)`` in the dtype of ``maps``, signed (no ReLU).
    """
    points = _centred_points(maps, "principal_projection")
    _, _, vh = torch.linalg.svd(points, full_matrices=False)
    projection = orient((points @ vh[:, 0, :, None])[..., 0])
    return projection.reshape(maps.shape[0], *maps.shape[2:]).to(maps.dtype)


def kernel_principal_projection(
    maps: Tensor,
    kernel: str = "sigmoid",
    gamma: float | None = None,
    degree: int = 3,
    coef0: float = 1.0,
) -> Tensor:
    """Each image's positions projected onto their first kernel principal component.

    With ``x_i`` the centred channel vector of position ``i`` and ``K_ij = κ(x_i, x_j)``, the
    kernel matrix is centred in feature space, ``K̃ = (I - 1/N) K (I - 1/N)``; with ``u`` its
    leading unit eigenvector and ``λ`` its eigenvalue (0 if negative), the projection is
    ``√λ · u``, oriented by :func:`orient`: scikit-learn's ``KernelPCA(n_components=1)``
    ``fit_transform``.

    Args:
        maps: ``(B, C, h, w)``, finite.
        kernel: ``"sigmoid"`` ``tanh(γ x·y + c₀)``, ``"rbf"`` ``exp(-γ |x - y|²)``, ``"poly"``
            ``(γ x·y + c₀)^d``, ``"linear"`` ``x·y`` (Eigen-CAM's projection), or ``"cosine"``
            ``x·y / (|x| |y|)``.
        gamma: ``γ``; ``None`` is ``1 / C``.
        degree: ``d`` of the polynomial kernel.
        coef0: ``c₀`` of the sigmoid and polynomial kernels.

    Returns:
        ``(B, h, w)`` in the dtype of ``maps``, signed (no ReLU).
    """
    points = _centred_points(maps, "kernel_principal_projection")
    scale = 1.0 / points.shape[-1] if gamma is None else gamma
    gram = points @ points.transpose(1, 2)
    if kernel == "sigmoid":
        matrix = torch.tanh(scale * gram + coef0)
    elif kernel == "poly":
        matrix = (scale * gram + coef0) ** degree
    elif kernel == "rbf":
        norms = gram.diagonal(dim1=1, dim2=2)
        distances = (norms[:, :, None] + norms[:, None, :] - 2.0 * gram).clamp(min=0)
        matrix = torch.exp(-scale * distances)
    elif kernel == "linear":
        matrix = gram
    elif kernel == "cosine":
        lengths = points.norm(dim=2)
        unit = points / torch.where(lengths == 0, torch.ones_like(lengths), lengths)[..., None]
        matrix = unit @ unit.transpose(1, 2)
    else:
        raise MethodError(f"unknown kernel {kernel!r}; choose one of {', '.join(_KERNELS)}")
    matrix = matrix - matrix.mean(dim=1, keepdim=True)  # centre the columns, then the rows
    matrix = matrix - matrix.mean(dim=2, keepdim=True)
    matrix = (matrix + matrix.transpose(1, 2)) / 2  # exactly symmetric for eigh
    values, vectors = torch.linalg.eigh(matrix)  # ascending
    leading = values[:, -1:].clamp(min=0).sqrt()
    projection = orient(vectors[:, :, -1] * leading)
    return projection.reshape(maps.shape[0], *maps.shape[2:]).to(maps.dtype)


class EigenCAM(CAMMethod):
    """Eigen-CAM (Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal
    Components", IJCNN 2020, arXiv 2008.00299).

    Gradient-free and class-agnostic: the map is the layer's dominant spatial pattern. With
    ``X`` the ``(h·w, C)`` matrix of the activations (one row per position), each channel
    centred over the positions, and ``v`` its first right singular vector::

        CAM = ReLU( ± X·v )           (sign: camkit's rule, see the module's documentation)

    The paper projects onto the first principal component of the activations; pytorch-grad-cam
    computes it by centring each channel over the positions before the SVD (uncentred, the
    first singular vector mostly follows the channels' mean levels rather than how the
    positions differ), and camkit does the same. The sign is the one part that differs: the
    reference keeps the SVD's, camkit makes the value of largest magnitude positive. The target
    class plays no part: every class gets the same map.
    """

    name = "eigencam"
    needs_gradients = False

    def compute(self, context: MethodContext) -> Tensor:
        return torch.relu(principal_projection(context.activations))


class EigenGradCAM(CAMMethod):
    """Eigen-Grad-CAM, pytorch-grad-cam's ``EigenGradCAM``: Eigen-CAM (Muhammad & Yeasin,
    IJCNN 2020, arXiv 2008.00299) of the activations weighted by their gradients.

    With ``X`` the ``(h·w, C)`` matrix of ``g^k_ij · A^k_ij``, each channel centred over the
    positions, and ``v`` its first right singular vector::

        CAM = ReLU( ± X·v )           (sign: camkit's rule, see the module's documentation)

    Unlike Eigen-CAM the map depends on the target class through the gradients. The variant
    has no paper of its own; camkit follows pytorch-grad-cam's definition, except for the sign,
    which the reference leaves to the SVD.
    """

    name = "eigengradcam"

    def compute(self, context: MethodContext) -> Tensor:
        return torch.relu(principal_projection(context.gradients * context.activations))


class KPCACAM(CAMMethod):
    """KPCA-CAM (Karmani, Sivakaran, Prasad, Ali, Yang & Tang, "KPCA-CAM: Visual
    Explainability of Deep Computer Vision Models using Kernel PCA", arXiv 2410.00267, 2024).

    Eigen-CAM with kernel PCA: the positions' centred channel vectors ``x_i`` are compared by
    a kernel ``K_ij = κ(x_i, x_j)``, the kernel matrix is centred in feature space, and the
    map is each position's coordinate on the leading kernel principal component::

        K̃   = (I - 1/N) K (I - 1/N),     K̃ u = λ u  (λ largest, |u| = 1)
        CAM = ReLU( ± √λ · u )          (sign: camkit's rule, see the module's documentation)

    The defaults are pytorch-grad-cam's ``KPCA_CAM``: the sigmoid kernel
    ``tanh(γ x·y + 1)`` with ``γ = 1/C``. The reference calls scikit-learn's
    ``KernelPCA(n_components=1)``; camkit computes the same decomposition with
    ``torch.linalg.eigh``, batched on the model's device, without scikit-learn. Its cost grows
    as ``(h·w)³`` per image: at layers larger than about 40 × 40 prefer Eigen-CAM.

    Args:
        kernel: ``"sigmoid"`` (default), ``"rbf"``, ``"poly"``, ``"linear"`` (Eigen-CAM's
            map) or ``"cosine"``, as in scikit-learn.
        gamma: the kernel's ``γ``, ``> 0``; ``None`` is ``1 / C``.
        degree: the polynomial kernel's degree, ``>= 1``.
        coef0: the sigmoid and polynomial kernels' constant.
    """

    name = "kpcacam"
    needs_gradients = False

    def __init__(
        self,
        kernel: str = "sigmoid",
        gamma: float | None = None,
        degree: int = 3,
        coef0: float = 1.0,
    ) -> None:
        if kernel not in _KERNELS:
            raise ConfigurationError(
                f"KPCACAM kernel must be one of {', '.join(map(repr, _KERNELS))}, got {kernel!r}"
            )
        if gamma is not None and not (_is_number(gamma) and gamma > 0 and math.isfinite(gamma)):
            raise ConfigurationError(f"KPCACAM gamma must be None or a number > 0, got {gamma!r}")
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ConfigurationError(f"KPCACAM degree must be an int >= 1, got {degree!r}")
        if not (_is_number(coef0) and math.isfinite(coef0)):
            raise ConfigurationError(f"KPCACAM coef0 must be a finite number, got {coef0!r}")
        self.kernel = kernel
        self.gamma = None if gamma is None else float(gamma)
        self.degree = degree
        self.coef0 = float(coef0)

    def compute(self, context: MethodContext) -> Tensor:
        projection = kernel_principal_projection(
            context.activations, self.kernel, self.gamma, self.degree, self.coef0
        )
        return torch.relu(projection)

    def __repr__(self) -> str:
        return (
            f"KPCACAM(kernel={self.kernel!r}, gamma={self.gamma!r}, degree={self.degree!r}, "
            f"coef0={self.coef0!r})"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
