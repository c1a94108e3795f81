"""lm: a causal language model scores each label's verbalizer as the continuation of a prompt.

The prompt is encoded once per text: its forward pass gives the log-probability of every verbalizer's first
token and leaves a KV cache; the cache is expanded to one row per label and the remaining verbalizer tokens of
all labels are scored in one batched forward. Verbalizers of one token each (" positive") need no second pass.

Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): the label probabilities of content-free
inputs ("N/A", "", "[MASK]") are averaged into p_cf, and each text's probabilities become p / p_cf, renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from ..backbones import load_tokenizer
from ..errors import UserError
from ..batching import right_pad
from ..label_texts import per_label_texts
from .base import ZeroShotMethod, check_template, model_kind, register_method, wrong_model

REDUCTIONS = ("sum", "mean")


@dataclass
class LMOptions:
    """options of method=lm (each field's comment says what it does)."""

    template: str = "{text}\nLabel:"  # the prompt; {text} is replaced by the text
    verbalizers: dict[str, str] = field(default_factory=dict)  # label -> continuation; default " <label>"
    reduction: str = "sum"  # sum | mean: a verbalizer's total or per-token log-likelihood
    calibrate: bool = False  # contextual calibration on content_free_inputs
    content_free_inputs: list[str] = field(default_factory=lambda: ["N/A", "", "[MASK]"])


def check_reduction(reduction: str) -> None:
    """Raises UserError unless `reduction` is one of REDUCTIONS (sum, mean)."""
    if reduction not in REDUCTIONS:
        raise UserError(f"options.reduction takes {' or '.join(REDUCTIONS)}, got {reduction!r}")


def reduce_log_likelihoods(token_log_probs: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """[..., num_labels]: the masked sum over the last axis (target tokens) of `token_log_probs`, divided by the number
    of target tokens when `reduction` is "mean"."""
    total = (token_log_probs * mask).sum(-1)
    return total / mask.sum(-1) if reduction == "mean" else total


@register_method
class CausalLMMethod(ZeroShotMethod):
    """method=lm: see the module docstring."""

    name = "lm"
    description = "log-likelihood of each label's verbalizer after a prompt, under a causal language model"
    options_class = LMOptions

    def check_options(self):
        """Raises UserError for a template without {text}, a bad reduction, or calibrate without content-free inputs."""
        check_template(self.options.template, "{text}", "Review: {text}\nSentiment:")
        check_reduction(self.options.reduction)
        if self.options.calibrate and not self.options.content_free_inputs:
            raise UserError("options.calibrate needs options.content_free_inputs, e.g. ['N/A', '', '[MASK]']")

    def check_model(self, config, model_name):
        """Raises UserError unless the checkpoint is a causal (decoder-only) language model."""
        if model_kind(config) != "decoder":
            raise wrong_model(model_name, config, self.name, "a causal (decoder-only) language model",
                              "use a GPT-2/Llama-style checkpoint, or method=seq2seq for T5, nli or embedding for encoders")

    def load(self, model, device):
        """Load the tokenizer (left padding and truncation, so the prompt's end stays next to the verbalizer) and
        AutoModelForCausalLM onto `device`."""
        self.device = device
        self.tokenizer = load_tokenizer(model)  # gives GPT-2 and Llama their pad token
        # Left padding puts every prompt's last token in the last column; cutting long prompts from the left keeps
        # the end of the template, right before the label.
        self.tokenizer.padding_side = self.tokenizer.truncation_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model.location, **model.load_kwargs).to(device).eval()
        bos = self.tokenizer.bos_token_id
        self.start_id = bos if bos is not None else self.tokenizer.eos_token_id

    def label_prompts(self, label_names):
        """{label: its verbalizer, the continuation scored after the prompt (default: " LABEL")}."""
        texts = per_label_texts(self.options.verbalizers, label_names, lambda label: f" {label}", "options.verbalizers")
        return dict(zip(label_names, texts))

    def prepare(self, label_names, multi_label):
        """Tokenize the verbalizers once (right-padded [num_labels, longest] ids and mask) and, with calibrate, average
        the content-free inputs' label probabilities into p_cf. Raises UserError for a verbalizer that encodes to no
        tokens."""
        verbalizers = self.label_prompts(label_names)
        encoded = self.tokenizer(list(verbalizers.values()), add_special_tokens=False)["input_ids"]
        empty = [label for label, ids in zip(verbalizers, encoded) if not ids]
        if empty:
            raise UserError(f"the verbalizer of label {empty[0]!r} encodes to no tokens: set options.verbalizers.{empty[0]}")
        ids, mask = right_pad(encoded, self.tokenizer.pad_token_id), right_pad([[1] * len(row) for row in encoded], 0)
        self.continuations, self.continuation_mask = ids.to(self.device), mask.to(self.device)
        self.content_free = None
        if self.options.calibrate:
            self.content_free = self.log_likelihoods(self.options.content_free_inputs, max_length=None).softmax(-1).mean(0)

    def probabilities(self, texts, max_length):
        """(len(texts), num_labels): softmax of the verbalizers' log-likelihoods over the labels; with calibrate divided
        by p_cf and renormalised (module docstring)."""
        probabilities = self.log_likelihoods(texts, max_length).softmax(-1)
        if self.content_free is None:
            return probabilities
        calibrated = probabilities / self.content_free
        return calibrated / calibrated.sum(-1, keepdim=True)

    @torch.inference_mode()
    def log_likelihoods(self, texts: list[str], max_length: int | None) -> torch.Tensor:
        """(len(texts), num_labels): log p(verbalizer | prompt), summed or averaged over its tokens."""
        prompts = [self.options.template.replace("{text}", text) for text in texts]
        ids = self.tokenizer(prompts, truncation=max_length is not None, max_length=max_length)["input_ids"]
        ids = [row or [self.start_id] for row in ids]  # an empty prompt still needs a position to predict from
        batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        prompt_mask = batch["attention_mask"]
        num_texts, (num_labels, width) = len(texts), self.continuations.shape
        cache = DynamicCache(config=self.model.config) if width > 1 else None
        output = self.model(input_ids=batch["input_ids"], attention_mask=prompt_mask,
                            position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0),
                            cache=cache, use_cache=width > 1, logits_to_keep=1)
        first = output.logits[:, -1].float().log_softmax(-1)[:, self.continuations[:, 0]]  # (texts, labels)
        if width == 1:
            return reduce_log_likelihoods(first[..., None], self.continuation_mask[None], self.options.reduction)

        # One row per (text, label): the text's cached prompt, followed by the label's verbalizer minus its last token.
        cache.batch_repeat_interleave(num_labels)
        inputs = self.continuations[:, :-1].repeat(num_texts, 1)
        targets = self.continuations[:, 1:].repeat(num_texts, 1)
        attention = torch.cat([prompt_mask.repeat_interleave(num_labels, 0),
                               self.continuation_mask[:, :-1].repeat(num_texts, 1)], dim=1)
        start = prompt_mask.sum(-1).repeat_interleave(num_labels)[:, None]
        positions = start + torch.arange(width - 1, device=self.device)
        logits = self.model(input_ids=inputs, attention_mask=attention, position_ids=positions, cache=cache,
                            use_cache=True).logits.float()
        rest = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
        token_log_probs = torch.cat([first.reshape(-1, 1), rest], dim=1).view(num_texts, num_labels, width)
        return reduce_log_likelihoods(token_log_probs, self.continuation_mask[None], self.options.reduction)
