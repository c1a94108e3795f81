"""Transfer strategies behind one config key, `strategy=`; each is a small module registered by name.

A strategy decides whether the pretrained weights are loaded, which parameters train (and at what learning
rate), which callbacks run, and how the result is saved. The recipe code never branches on strategy names.
"""

from .base import STRATEGIES, Strategy, StrategySetup, get_strategy, register_strategy
from . import adapter, frozen, full, linear_probe, setfit_peer, unfreeze  # noqa: F401  (each import registers its strategies)

__all__ = ["STRATEGIES", "Strategy", "StrategySetup", "get_strategy", "register_strategy"]
