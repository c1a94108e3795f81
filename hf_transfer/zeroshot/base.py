"""The zero-shot method interface and its registry.

A method turns a pretrained checkpoint into label probabilities without training: it checks its options and the
checkpoint's kind (from the config, before any weights load), loads the model, prepares the label side once
(hypotheses, verbalizer tokens, description embeddings), then scores batches of texts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_MASKED_LM_MAPPING,
                                                    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING)

from ..config import from_dict
from ..errors import UserError


class ZeroShotMethod:
    """A zero-shot method (module docstring): subclasses set name, description, options_class and supports_multi_label,
    and implement the steps below, called in order check_options, check_model, load, prepare, then probabilities per
    batch."""

    name: ClassVar[str]
    description: ClassVar[str]
    options_class: ClassVar[type]
    supports_multi_label: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any] | None = None):
        """Parse `options` (the run's options) into options_class and check them; raises UserError for an unknown key, a
        bad value, or what check_options refuses."""
        self.options = from_dict(self.options_class, dict(options or {}), prefix="options.")
        self.check_options()

    def check_options(self) -> None:
        """Raise a UserError for options that cannot work whatever the model and labels."""

    def check_model(self, config, model_name: str) -> None:
        """Raise a UserError when the checkpoint (its config) is not of the kind this method needs."""
        raise NotImplementedError

    def load(self, model, device: torch.device) -> None:
        """Load tokenizer and weights of a ResolvedModel, ready for inference on `device`."""
        raise NotImplementedError

    def prepare(self, label_names: list[str], multi_label: bool) -> None:
        """Label-side work done once: build and encode what every text is compared with."""
        raise NotImplementedError

    def label_prompts(self, label_names: list[str]) -> dict[str, str]:
        """What each label becomes for the model (hypothesis, verbalizer, description): shown on cards."""
        raise NotImplementedError

    def probabilities(self, texts: list[str], max_length: int) -> torch.Tensor:
        """(len(texts), num_labels): a distribution over labels per text (single-label) or per-label probabilities."""
        raise NotImplementedError

    def split_probabilities(self, texts: list[str], max_length: int, batch_size: int, desc: str) -> np.ndarray:
        """(len(texts), num_labels) float32 probabilities of a whole split (`desc` names it in the progress bar):
        `probabilities` over batches of `batch_size` similar lengths, rows back in input order."""
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        probabilities = None
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch"):
            rows = order[start:start + batch_size]
            batch = self.probabilities([texts[i] for i in rows], max_length).float().cpu().numpy()
            if probabilities is None:
                probabilities = np.zeros((len(texts), batch.shape[1]), dtype=np.float32)
            probabilities[rows] = batch
        return probabilities if probabilities is not None else np.zeros((0, 0), dtype=np.float32)


METHODS: dict[str, type[ZeroShotMethod]] = {}


def register_method(cls: type[ZeroShotMethod]) -> type[ZeroShotMethod]:
    """Class decorator: make `cls` choosable as method=cls.name (METHODS); returns `cls`."""
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, options: dict[str, Any] | None = None) -> ZeroShotMethod:
    """The method `name` built with `options`. Raises UserError for an unknown name (listing the known ones) or bad
    options."""
    if name not in METHODS:
        raise UserError(f"unknown zero-shot method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name](options)


def check_template(template: str, placeholder: str, example: str) -> None:
    """A template must be non-empty and hold its placeholder, e.g. {label} in 'This example is {label}.'."""
    if not template.strip():
        raise UserError(f"options.template is empty: give a template with {placeholder}, e.g. {example!r}")
    if placeholder not in template:
        raise UserError(f"options.template {template!r} has no {placeholder}: put {placeholder} where it belongs, "
                        f"e.g. {example!r}")


def model_kind(config) -> str:
    """encoder-decoder | encoder | decoder | other, from the Auto classes that know the config (ours included)."""
    from .. import models  # noqa: F401  registers our backbones with the Auto classes

    if config.is_encoder_decoder and type(config) in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING:
        return "encoder-decoder"
    if type(config) in MODEL_FOR_MASKED_LM_MAPPING:  # BERT also has a causal-LM class, but it is an encoder
        return "encoder"
    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return "decoder"
    return "other"


def wrong_model(model_name: str, config, method: str, needs: str, hint: str) -> UserError:
    """The UserError for a checkpoint of the wrong kind: it names the model, its type, what `method` needs, and `hint`.
    """
    return UserError(f"model {model_name!r} ({config.model_type}) is not {needs}, which method {method!r} needs: {hint}")
