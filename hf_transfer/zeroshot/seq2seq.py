"""seq2seq: an encoder-decoder (T5, Flan-T5, BART) scores each label's verbalizer as the decoder's target.

The prompt is encoded once per text; its encoder states are shared by the label rows, and all labels' targets
(tokenised as the model's training targets, with their end-of-sequence token) are scored in one decoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSeq2SeqLM

from ..backbones import load_tokenizer
from ..label_texts import per_label_texts, seq2seq_target_log_probs, seq2seq_targets
from .base import ZeroShotMethod, check_template, model_kind, register_method, wrong_model
from .lm import check_reduction, reduce_log_likelihoods


@dataclass
class Seq2SeqOptions:
    """options of method=seq2seq (each field's comment says what it does)."""

    template: str = "{text}\nLabel:"  # the encoder input; {text} is replaced by the text
    verbalizers: dict[str, str] = field(default_factory=dict)  # label -> decoder target; default: the label name
    reduction: str = "sum"  # sum | mean: a target's total or per-token log-likelihood


@register_method
class Seq2SeqMethod(ZeroShotMethod):
    """method=seq2seq: an encoder-decoder (T5, Flan-T5, BART) reads the prompt; each label's verbalizer is scored as the
    decoder target, log p(verbalizer | prompt)."""

    name = "seq2seq"
    description = "log-likelihood of each label's verbalizer as the decoder target of an encoder-decoder model"
    options_class = Seq2SeqOptions

    def check_options(self):
        """Raises UserError for a template without {text} or a bad reduction."""
        check_template(self.options.template, "{text}", "Is this review positive or negative? {text}")
        check_reduction(self.options.reduction)

    def check_model(self, config, model_name):
        """Raises UserError unless the checkpoint is an encoder-decoder model."""
        if model_kind(config) != "encoder-decoder":
            raise wrong_model(model_name, config, self.name, "an encoder-decoder model",
                              "use a T5/Flan-T5/BART checkpoint, or method=lm for GPT-2/Llama-style models")

    def load(self, model, device):
        """Load the tokenizer (left truncation: the question at the template's end stays) and AutoModelForSeq2SeqLM onto
        `device`."""
        self.device = device
        self.tokenizer = load_tokenizer(model)  # with a pad token, which batches need
        self.tokenizer.truncation_side = "left"  # long texts lose their start, never the question at the end
        self.model = AutoModelForSeq2SeqLM.from_pretrained(model.location, **model.load_kwargs).to(device).eval()

    def label_prompts(self, label_names):
        """{label: its verbalizer, the decoder target (default: the label's name)}."""
        return dict(zip(label_names, per_label_texts(self.options.verbalizers, label_names, str, "options.verbalizers")))

    def prepare(self, label_names, multi_label):
        """Tokenize the verbalizers once as decoder targets with eos ([num_labels, longest] ids and mask). Raises
        UserError when two labels tokenize to the same target."""
        ids, mask = seq2seq_targets(self.tokenizer, list(self.label_prompts(label_names).values()),
                                    "options.verbalizers")
        self.targets, self.target_mask = ids.to(self.device), mask.to(self.device)

    def probabilities(self, texts, max_length):
        """(len(texts), num_labels): softmax of the targets' log-likelihoods over the labels."""
        return self.log_likelihoods(texts, max_length).softmax(-1)

    @torch.inference_mode()
    def log_likelihoods(self, texts: list[str], max_length: int) -> torch.Tensor:
        """(len(texts), num_labels): log p(target | prompt), summed or averaged over the target's tokens."""
        prompts = [self.options.template.replace("{text}", text) for text in texts]
        batch = self.tokenizer(prompts, truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt").to(self.device)
        encoded = self.model.get_encoder()(**batch).last_hidden_state
        token_log_probs = seq2seq_target_log_probs(self.model, encoded, batch["attention_mask"], self.targets)
        return reduce_log_likelihoods(token_log_probs, self.target_mask[None], self.options.reduction)
