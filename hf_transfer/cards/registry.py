"""Which renderer writes the card of a run: one per `RunResult.kind`, each in its own module, imported on first use.

A kind's module registers its renderer with `@register_card_renderer(kind)`; RENDERER_MODULES names that module so
that `render_card` can import it when a card of the kind is first needed. Adding a kind is one module plus one
entry there.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from huggingface_hub import ModelCard

from ..errors import UserError
from ..results import RunResult

# (result, folder, load_from, reproduce) -> ModelCard; `render_card` says what each argument means.
CardRenderer = Callable[[RunResult, Path, str, "str | None"], ModelCard]
# kind -> renderer, for the kinds whose module has been imported.
CARD_RENDERERS: dict[str, CardRenderer] = {}
# kind -> the module that registers its renderer, imported by `render_card` when a card of that kind is first needed.
RENDERER_MODULES = {
    "classification": "hf_transfer.cards.classifier",
    "zero-shot": "hf_transfer.cards.zeroshot",
    "token-classification": "hf_transfer.cards.tagger",
}


def register_card_renderer(kind: str) -> Callable[[CardRenderer], CardRenderer]:
    """Decorator: make the function the card renderer of runs whose `RunResult.kind` is `kind`.

    The function is returned unchanged; a later registration for the same kind replaces the earlier one.
    """

    def register(renderer: CardRenderer) -> CardRenderer:
        CARD_RENDERERS[kind] = renderer
        return renderer

    return register


def has_card(kind: str) -> bool:
    """Whether runs of `kind` have a card renderer (registered or registering on first use)."""
    return kind in CARD_RENDERERS or kind in RENDERER_MODULES


def render_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    """The model card of a run, rendered by the renderer of `result.kind`.

    `folder` holds the run's files: the renderer looks there for what was saved (whole model, peft adapter,
    modeling code, plots). `load_from` is what a reader passes to from_pretrained: the output folder's path for a
    local card, the repo id for a published one, so that the usage snippet runs as written; its last part is the
    card's title. `reproduce` is the command shown under "how to reproduce"; None builds one from the run's
    config (`reproduce_command`). The card is returned, not saved: `.save(folder / "README.md")` writes it.

    Raises UserError when no renderer exists for `result.kind`.
    """
    if result.kind not in CARD_RENDERERS and result.kind in RENDERER_MODULES:
        importlib.import_module(RENDERER_MODULES[result.kind])  # registers its renderer
    if result.kind not in CARD_RENDERERS:
        raise UserError(f"no model card template for runs of kind {result.kind!r}: "
                        f"cards exist for {', '.join(sorted({*CARD_RENDERERS, *RENDERER_MODULES}))}")
    return CARD_RENDERERS[result.kind](result, Path(folder), load_from, reproduce)
