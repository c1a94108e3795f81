"""nli: every label becomes a hypothesis; an NLI model's entailment logit says how well the text supports it.

Same semantics as transformers' zero-shot-classification pipeline: single-label scores are a softmax of the
entailment logits over the labels; multi-label scores are, per label, a softmax over [contradiction, entailment].
Unlike the pipeline, which runs one (text, hypothesis) pair per forward, a batch of texts and all their
hypotheses go through the model together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSequenceClassification

from ..backbones import load_tokenizer
from ..errors import UserError
from ..label_texts import per_label_texts
from .base import ZeroShotMethod, check_template, register_method, wrong_model


@dataclass
class NLIOptions:
    """options of method=nli (each field's comment says what it does)."""

    template: str = "This example is {label}."  # the hypothesis; {label} is replaced by the label's description
    label_descriptions: dict[str, str] = field(default_factory=dict)  # label -> text for {label}; default: the name


def entailment_ids(config) -> tuple[int, int] | None:
    """(entailment, contradiction) output ids, found like the pipeline finds them; None without an entailment label."""
    entailment = next((i for label, i in config.label2id.items() if label.lower().startswith("entail")), None)
    if entailment is None:
        return None
    named = next((i for label, i in config.label2id.items() if label.lower().startswith("contradict")), None)
    # The pipeline takes output 0 as contradiction (the last one when entailment is 0); names win where present.
    return entailment, named if named is not None else (-1 if entailment == 0 else 0) % config.num_labels


@register_method
class NLIMethod(ZeroShotMethod):
    """method=nli: see the module docstring."""

    name = "nli"
    description = "entailment of a label hypothesis by the text, scored by an NLI cross-encoder"
    options_class = NLIOptions
    supports_multi_label = True

    def check_options(self):
        """Raises UserError for a template without {label}."""
        check_template(self.options.template, "{label}", "This example is {label}.")

    def check_model(self, config, model_name):
        """Raises UserError when the config's id2label has no entailment label."""
        if entailment_ids(config) is None:
            labels = ", ".join(map(str, config.id2label.values()))
            raise wrong_model(model_name, config, self.name, "an NLI model (its labels are " + labels + ", none is "
                              "'entailment')", "pick an MNLI/XNLI checkpoint, or set id2label in its config.json")

    def load(self, model, device):
        """Load the tokenizer and the NLI AutoModelForSequenceClassification onto `device`; find its entailment and
        contradiction ids."""
        self.device = device
        self.tokenizer = load_tokenizer(model)  # with a pad token, which batches need
        self.model = AutoModelForSequenceClassification.from_pretrained(model.location, **model.load_kwargs)
        self.model.to(device).eval()
        self.entailment, self.contradiction = entailment_ids(self.model.config)

    def label_prompts(self, label_names):
        """{label: its hypothesis, the template with {label} replaced by its description (default: the name)}."""
        descriptions = per_label_texts(self.options.label_descriptions, label_names, str, "options.label_descriptions")
        return {label: self.options.template.replace("{label}", text) for label, text in zip(label_names, descriptions)}

    def prepare(self, label_names, multi_label):
        """Build the hypotheses once, in label order."""
        self.hypotheses = list(self.label_prompts(label_names).values())
        self.multi_label = multi_label

    @torch.inference_mode()
    def probabilities(self, texts, max_length):
        """(len(texts), num_labels), every (text, hypothesis) pair in one batch, texts truncated first to `max_length`
        tokens: the entailment logits' softmax over labels; multi-label: per label the softmax over [contradiction,
        entailment]. Raises UserError when a hypothesis alone does not fit into max_length."""
        premises = [text for text in texts for _ in self.hypotheses]
        hypotheses = self.hypotheses * len(texts)
        try:
            batch = self.tokenizer(premises, hypotheses, truncation="only_first", max_length=max_length, padding=True,
                                   return_tensors="pt").to(self.device)
        except Exception as err:  # tokenizers raises a bare Exception when the hypothesis alone is too long
            if "too short" not in str(err):
                raise
            raise UserError(f"the hypotheses do not fit into data.max_length={max_length} tokens: "
                            "raise data.max_length or shorten options.template") from None
        logits = self.model(**batch).logits.float().view(len(texts), len(self.hypotheses), -1)
        if self.multi_label:
            return logits[..., [self.contradiction, self.entailment]].softmax(-1)[..., 1]
        return logits[..., self.entailment].softmax(-1)
