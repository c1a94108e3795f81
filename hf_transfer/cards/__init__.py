"""Model cards: Jinja templates in model_cards/, metadata through huggingface_hub's ModelCardData and EvalResult.

`render_card(result, folder, load_from)` returns the card of a run, written by the renderer of its
`RunResult.kind`. The modules, one job each:

    registry.py    kind -> renderer (`register_card_renderer`, `render_card`, RENDERER_MODULES)
    base.py        what every kind shares: templates, the YAML header, margins and names, the reproduce
                   command, what a run's folder holds (plots, JSON files, modeling code)
    classifier.py  "classification": a fine-tuned classifier, full weights or a peft adapter
    zeroshot.py    "zero-shot": a zero-shot evaluation
    tagger.py      "token-classification": a named-entity tagger, full weights or a peft adapter

A new kind of card is a module here whose renderer is decorated with `@register_card_renderer(kind)`, plus one
entry kind -> module in `registry.RENDERER_MODULES`; renderer modules are imported on first use, so none is
imported by this package.
"""

from .base import (EXAMPLE_TEXTS, TRANSFER_EXPLANATIONS, accuracy_margin, accuracy_margins, card_data, card_title,
                   collapsed_label, data_notes, dataset_label, eval_results, format_duration, hub_dataset_id, plots_in, read_json,
                   remote_code_files, render_template, reproduce_command, source_link, template_dir)
from .registry import CARD_RENDERERS, RENDERER_MODULES, CardRenderer, has_card, register_card_renderer, render_card

__all__ = ["CARD_RENDERERS", "CardRenderer", "EXAMPLE_TEXTS", "RENDERER_MODULES", "TRANSFER_EXPLANATIONS",
           "accuracy_margin", "accuracy_margins", "card_data", "card_title", "collapsed_label", "data_notes",
           "dataset_label", "eval_results", "format_duration", "has_card", "hub_dataset_id", "plots_in",
           "read_json", "register_card_renderer", "remote_code_files", "render_card", "render_template",
           "reproduce_command", "source_link", "template_dir"]
