"""A channels-last twin of a model: the same modules and values, with its 4-D tensors laid out
channels-last, for the many scoring passes of perturbation methods on the CPU.

On the CPU, PyTorch's oneDNN convolutions and its pooling kernels are faster on channels-last
tensors than on the default (NCHW) layout: a forward of 16 images is 1.06× to 1.56× faster
on ResNets, VGG, DenseNet, MobileNetV3 and EfficientNet, and 1.25× to 1.86× with the batch
norms folded as below (ConvNeXt: 1.0×; measured here, torch 2.14, two cores,
``tests/benchmarks/bench_twin.py``, docs/benchmarks.md). Converting only the input does not
help: every convolution then converts its weight again on every call. The user's model must
not be changed, so the scoring passes run on a *twin*: a copy of the model's modules that shares
every tensor except the 4-D ones, which it holds as channels-last copies
(:func:`channels_last_twin`). Being camkit's own copy, the twin may also absorb each
eval-mode batch norm into the convolution before it (:func:`fold_batch_norms`), which saves
the batch norms' passes over the maps (7 % of a ResNet-18 forward here).

The twin computes the same function (PyTorch's operators do not depend on the layout, and a
folded batch norm is the same affine map; the float results differ by rounding only, about
1e-6 relative); :meth:`MethodContext.score_inputs <camkit.methods.MethodContext.score_inputs>`
still checks each twin once against the model's own logits and scores with the model itself
when it differs or fails.
"""

from __future__ import annotations

import copy
import weakref
from collections import Counter
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["channels_last_twin", "fold_batch_norms"]


def _compiled_or_scripted(model: nn.Module) -> bool:
    """Whether ``model`` is a TorchScript module or wraps a ``torch.compile``'d one: copying
    either would compile again (slowly) or not reach its tensors."""
    return any(
        isinstance(module, torch.jit.ScriptModule) or hasattr(module, "_orig_mod")
        for module in model.modules()
    )


def channels_last_twin(model: nn.Module) -> nn.Module | None:
    """A twin of ``model`` for channels-last inputs, or ``None`` where it does not apply.

    The twin is a copy of the module tree, module by module (a module shared by two parents
    stays shared): each module is a new object of the same class with the same attributes
    and its own tables of parameters, buffers, children and hooks (no ``__copy__``,
    ``__deepcopy__`` or pickling protocol of the class runs). Every 4-D parameter and buffer
    is replaced by a channels-last copy (parameters with ``requires_grad=False``: the twin
    computes no parameter gradients); every other tensor, every hook function and every other
    attribute (a dictionary two modules share, a torch.fx graph, ...) is shared with
    ``model``, not copied, so the copy costs the 4-D tensors and a few dictionaries per
    module whatever else the model holds. Hooks registered on the twin later are the twin's
    alone. ``model`` itself is only read.

    The model's hook functions run on the twin's forwards as on the model's, with the twin's
    modules as their ``module`` argument.

    Returns ``None`` when the model has no 4-D floating-point tensor on the CPU (nothing to
    gain), or is TorchScript or ``torch.compile``'d (a copy would compile again, or miss its
    tensors); the caller then uses ``model``.

    A module that reaches other modules through an attribute that is not a child (a plain
    list of modules, say) reaches the model's own modules from the twin: the values are the
    same, only those modules run in their own layout.

    Memory: the twin holds a copy of the model's 4-D tensors (a ResNet-50's convolutions:
    about 94 MB) for as long as the caller keeps it.
    """
    tensors: list[Tensor] = [*model.parameters(), *model.buffers()]
    if _compiled_or_scripted(model) or not any(
        t.ndim == 4 and t.device.type == "cpu" and t.is_floating_point() for t in tensors
    ):
        return None
    replaced: dict[int, Tensor] = {}
    for tensor in tensors:
        if tensor.ndim == 4:
            copied = tensor.detach().contiguous(memory_format=torch.channels_last)
            if isinstance(tensor, nn.Parameter):
                copied = nn.Parameter(copied, requires_grad=False)
            replaced[id(tensor)] = copied
    return _copy_tree(model, replaced, {})


_TABLES = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})


def _is_own_table(key: str) -> bool:
    """Whether ``key`` names one of ``nn.Module``'s own tables, which the twin copies (its
    parameters, buffers, children and hooks); every other attribute is shared."""
    return key in _TABLES or "hooks" in key


def _copy_tree(
    module: nn.Module, replaced: dict[int, Tensor], done: dict[int, nn.Module]
) -> nn.Module:
    found = done.get(id(module))
    if found is not None:
        return found
    # a bare new object of the same class with the same attributes: neither the class's
    # __copy__ (an fx GraphModule's would take over the user's graph) nor its pickling
    # protocol (parametrized modules refuse it) runs
    cls = type(module)
    twin = cls.__new__(cls)
    for owner in cls.__mro__:
        slots = getattr(owner, "__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(module, slot):
                object.__setattr__(twin, slot, getattr(module, slot))
    state = twin.__dict__
    state.update(module.__dict__)
    done[id(module)] = twin
    for key, value in list(state.items()):
        if _is_own_table(key) and isinstance(value, (dict, set)):
            state[key] = copy.copy(value)
    for table in (state["_parameters"], state["_buffers"]):
        for name, tensor in table.items():
            if tensor is not None and id(tensor) in replaced:
                table[name] = replaced[id(tensor)]
    children = state["_modules"]
    for name, child in children.items():
        if child is not None:
            children[name] = _copy_tree(child, replaced, done)
    return twin


def _hooked(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _folding_pairs(twin: nn.Module, inputs: Tensor) -> list[tuple[str, str]]:
    """``(conv, batch norm)`` names where, in one forward of ``inputs``, the batch norm ran
    once, on the very tensor the convolution (also run once) returned, neither has hooks,
    and each is known by one name."""
    names = Counter(name for name, _ in twin.named_modules(remove_duplicate=False))
    convs: dict[str, nn.Module] = {}
    norms: dict[str, nn.Module] = {}
    for name, module in twin.named_modules():
        if names[name] != 1 or _hooked(module):
            continue
        if type(module) is nn.Conv2d:
            convs[name] = module
        elif (
            type(module) is nn.BatchNorm2d
            and not module.training
            and module.running_mean is not None
            and module.running_var is not None
        ):
            norms[name] = module
    calls: Counter[str] = Counter()
    # by id: the convolution's name, a weak reference (an id may be reused once the tensor
    # is freed; the outputs are not kept alive) and the tensor's version counter
    produced: dict[int, tuple[str, weakref.ref[Tensor], int]] = {}
    fed: dict[str, str] = {}

    def after_conv(name: str) -> Any:
        def hook(_module: nn.Module, _args: Any, out: Any) -> None:
            calls[name] += 1
            if isinstance(out, Tensor):
                produced[id(out)] = (name, weakref.ref(out), out._version)

        return hook

    def before_norm(name: str) -> Any:
        def hook(_module: nn.Module, args: Any) -> None:
            calls[name] += 1
            given = args[0] if args else None
            source = produced.get(id(given))
            # the very tensor, not changed in place since the convolution returned it
            if (
                isinstance(given, Tensor)
                and source is not None
                and source[1]() is given
                and given._version == source[2]
            ):
                fed[name] = source[0]

        return hook

    handles = [m.register_forward_hook(after_conv(n)) for n, m in convs.items()]
    handles += [m.register_forward_pre_hook(before_norm(n)) for n, m in norms.items()]
    try:
        twin(inputs)
    finally:
        for handle in handles:
            handle.remove()
    feeds = Counter(fed.values())
    return [
        (conv, norm)
        for norm, conv in fed.items()
        if calls[conv] == 1 and calls[norm] == 1 and feeds[conv] == 1
    ]


def fold_batch_norms(twin: nn.Module, inputs: Tensor) -> int:
    """Fold each eval-mode ``BatchNorm2d`` that reads a ``Conv2d``'s output into that
    convolution, in ``twin`` (never in a user's model): the convolution's weight and bias
    absorb the normalisation, ``w' = w · γ / √(σ² + ε)``, ``b' = (b − μ) · γ / √(σ² + ε) + β``,
    and the batch norm becomes an ``nn.Identity``. The function is the same up to float
    rounding; the batch norm's pass over the map is saved.

    The pairs are those seen in one forward of ``inputs`` (under the caller's grad mode; one
    image is enough): the batch norm ran once, on the very tensor the convolution returned
    (also run once), unchanged in place since, and neither module has hooks or a second
    name. A convolution whose output something else also reads cannot be told apart this
    way: the caller checks the folded twin's logits (as
    :meth:`~camkit.methods.MethodContext.score_inputs` does).

    The folded weight keeps the convolution's layout (channels-last in a twin).

    Returns:
        The number of batch norms folded.
    """
    pairs = _folding_pairs(twin, inputs)
    for conv_name, norm_name in pairs:
        conv = twin.get_submodule(conv_name)
        norm = twin.get_submodule(norm_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
        assert norm.running_mean is not None and norm.running_var is not None
        weight = conv.weight
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        shift = (bias - norm.running_mean) * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        folded = (weight * scale.reshape(-1, 1, 1, 1)).to(weight.dtype).detach()  # same layout
        conv.weight = nn.Parameter(folded, requires_grad=False)
        conv.bias = nn.Parameter(shift.to(weight.dtype).detach(), requires_grad=False)
        parent_name, _, child = norm_name.rpartition(".")
        parent = twin.get_submodule(parent_name) if parent_name else twin
        parent._modules[child] = nn.Identity()
    return len(pairs)
