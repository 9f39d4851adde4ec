"""camkit's built-ins, registered as a plugin through the same hooks third parties use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from camkit.layers.base import LayerResolver
from camkit.layers.structural import StructuralResolver, declares_channels_last
from camkit.layers.table import BUILTIN_ARCHITECTURES, ArchitectureTableResolver
from camkit.methods.base import CAMMethod
from camkit.methods.eigen import KPCACAM, EigenCAM, EigenGradCAM
from camkit.methods.finer import FinerCAM
from camkit.methods.fullgrad import FullGrad
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus
from camkit.methods.gradient import GradCAMElementWise, HiResCAM, LayerCAM, XGradCAM
from camkit.methods.linear_head import CAM
from camkit.methods.perturbation import ISCAM, SSCAM, AblationCAM, ScoreCAM
from camkit.methods.shapley import ShapleyCAM
from camkit.methods.smooth import SmoothGradCAMPlusPlus
from camkit.plugins.hookspecs import hookimpl
from camkit.render.base import Renderer
from camkit.render.colormap import COLORMAP_RENDERERS


@hookimpl(trylast=True)
def camkit_register_methods() -> Sequence[type[CAMMethod]]:
    return [
        GradCAMPlusPlus,
        GradCAM,
        HiResCAM,
        GradCAMElementWise,
        XGradCAM,
        LayerCAM,
        EigenCAM,
        EigenGradCAM,
        KPCACAM,
        FullGrad,
        ShapleyCAM,
        SmoothGradCAMPlusPlus,
        FinerCAM,
        CAM,
        ScoreCAM,
        SSCAM,
        ISCAM,
        AblationCAM,
    ]


@hookimpl(trylast=True)
def camkit_register_renderers() -> Sequence[type[Renderer]]:
    return list(COLORMAP_RENDERERS.values())


@hookimpl(trylast=True)
def camkit_register_resolvers() -> Sequence[LayerResolver]:
    return [ArchitectureTableResolver(), StructuralResolver()]


@hookimpl(trylast=True)
def camkit_register_architectures() -> Mapping[str, str]:
    return BUILTIN_ARCHITECTURES


@hookimpl(trylast=True)
def camkit_to_spatial(model: nn.Module, layer: str, output: Tensor) -> Tensor | None:
    if output.ndim != 4 or declares_channels_last(model):
        return None
    if declares_channels_last(model.get_submodule(layer)):
        return None
    return output
