"""camkit-vit: class-activation maps for timm vision transformers.

Installing this package is all a user does: camkit finds it through the ``camkit`` entry-point
group, and ``Explainer(model).explain(img)`` then works on timm's ViT, DeiT (distilled ones
included) and Swin models with no layer and no reshape to write.

What it registers (see :mod:`camkit_vit.plugin`):

- two layer resolvers, :class:`TokenBlockResolver` (ViT/DeiT: the last block's ``norm1``) and
  :class:`ChannelsLastStageResolver` (Swin: the last stage);
- a ``camkit_to_spatial`` hook that folds token sequences ``(B, N, C)`` into maps
  ``(B, C, h, w)`` with :func:`tokens_to_map`, and permutes channels-last ``(B, h, w, C)``
  maps with :func:`channels_last_to_first`;
- a ``camkit_input_size`` hook that gives the size a patch embedding enforces
  (:func:`enforced_input_size`), so that images are preprocessed to it;
- a ``camkit_advice`` hook that says what camkit-vit covers when camkit cannot read a
  transformer's maps, and which layer to choose when a ViT's map is empty.

It uses only camkit's documented hooks and public API.
"""

from camkit_vit.layout import (
    channels_last_to_first,
    enforced_input_size,
    is_channels_last_model,
    is_token_transformer,
    token_grid,
    tokens_to_map,
)
from camkit_vit.resolvers import ChannelsLastStageResolver, TokenBlockResolver

__all__ = [
    "ChannelsLastStageResolver",
    "TokenBlockResolver",
    "channels_last_to_first",
    "enforced_input_size",
    "is_channels_last_model",
    "is_token_transformer",
    "token_grid",
    "tokens_to_map",
]

__version__ = "0.1.0"
