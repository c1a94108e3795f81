"""Feature transfer with a frozen backbone: only the classification head trains (`strategy=frozen`).

The head is the family's head modules (`Family.head_modules`): BERT's pooler (dense + tanh on the CLS state) and
`classifier`, GPT-2's `score`, T5's whole `classification_head` (dense + tanh + out_proj), our backbones'
`classifier`. Every other weight keeps its pretrained value bit for bit. The output folder is a whole model that
`transformers.pipeline` loads.
"""

from __future__ import annotations

from .base import Strategy, StrategySetup, register_strategy
from .layers import head_modules


def freeze_all_but(model, trainable_modules) -> None:
    """Set requires_grad False on every parameter of `model`, then True on those of `trainable_modules`."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for module in trainable_modules:
        for parameter in module.parameters():
            parameter.requires_grad_(True)


@register_strategy
class FrozenBackbone(Strategy):
    """strategy=frozen: the pretrained backbone's features stay fixed; the classification head trains."""

    name = "frozen"
    description = "the pretrained backbone stays frozen; only the classification head trains"
    transferred = "features"
    default_learning_rate = 2e-3  # a freshly initialised head alone tolerates (and needs) a high rate

    def setup(self, model, family, train_config) -> StrategySetup:
        """Freeze everything but the family's head modules (layers.head_modules)."""
        freeze_all_but(model, head_modules(model, family).values())
        return StrategySetup(model, family)
