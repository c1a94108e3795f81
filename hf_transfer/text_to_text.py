"""head=text-to-text: an encoder-decoder model (T5) classifies by writing its label's words.

Training is T5's own objective: the target of a text is the words of its label (`label_words`, by default the
label's name) followed by the tokenizer's eos, learned with teacher forcing and cross-entropy over the target
tokens. Prediction scores every label's target under the model: a text's logits are the summed log-likelihoods
log p(label words | text), so their softmax is the model's probability of writing each label, renormalised over
the label set, and the predicted label is the one it would most likely write. Scoring, not `generate`, is what
keeps every prediction one of the labels.

The output folder is a plain seq2seq checkpoint (`T5ForConditionalGeneration` + tokenizer): `config.label_words`
lists the target texts in label order and `config.id2label` names them. `TextToTextClassifier.from_pretrained`
loads it with hf_transfer; the model card's usage snippet (`usage_snippet`) repeats the scoring with transformers
alone and reproduces predictions.jsonl.
"""

from __future__ import annotations

import json

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.modeling_outputs import SequenceClassifierOutput

from .errors import UserError
from .label_texts import per_label_texts, seq2seq_target_log_probs, seq2seq_targets


def check_label_words(label_names: list[str], label_words: dict) -> list[str]:
    """The target text of every label, in label order: `label_words[label]`, else the label's name."""
    return per_label_texts(label_words, label_names, str, "label_words")


class TextToTextClassifier(nn.Module):
    """A seq2seq LM behind the classifier interface: forward(input_ids, attention_mask, labels) ->
    SequenceClassifierOutput(loss, logits=[batch, num_labels] label log-likelihoods), so that the Trainer and the
    evaluation treat it like any other classifier. It trains as a whole (strategy=full or scratch)."""

    def __init__(self, seq2seq, tokenizer, label_words: list[str]):
        """`seq2seq`: an AutoModelForSeq2SeqLM; `label_words`: each label's target text, in label order, tokenized once
        into padded target ids. Raises UserError (label_texts.seq2seq_targets) when two labels tokenize to the same
        target."""
        super().__init__()
        self.seq2seq = seq2seq
        self.label_words = list(label_words)
        ids, mask = seq2seq_targets(tokenizer, self.label_words, "label_words")
        self.register_buffer("target_ids", ids, persistent=False)
        self.register_buffer("target_mask", mask, persistent=False)

    @classmethod
    def from_pretrained(cls, folder, **kwargs) -> "TextToTextClassifier":
        """Load an output folder of a head=text-to-text run."""
        seq2seq = AutoModelForSeq2SeqLM.from_pretrained(folder, **kwargs)
        if not getattr(seq2seq.config, "label_words", None):
            raise UserError(f"{folder} has no config.label_words: it was not saved by a head=text-to-text run")
        return cls(seq2seq, AutoTokenizer.from_pretrained(folder), seq2seq.config.label_words)

    @property
    def config(self):
        """The seq2seq model's config (carries id2label and, once saved, label_words)."""
        return self.seq2seq.config

    def get_input_embeddings(self):
        """The seq2seq model's input embeddings."""
        return self.seq2seq.get_input_embeddings()

    def set_input_embeddings(self, value):
        """Replace the seq2seq model's input embeddings with `value`."""
        self.seq2seq.set_input_embeddings(value)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        """Training: T5's loss on the gold label's target (no logits). Evaluation: logits = label_scores, [batch,
        num_labels], and with `labels` the loss -log p(gold target) per target token."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.training:  # T5's objective; scoring every label would only cost time here
            targets = self.target_ids[labels].masked_fill(self.target_mask[labels] == 0, -100)
            loss = self.seq2seq(input_ids=input_ids, attention_mask=attention_mask, labels=targets).loss
            return SequenceClassifierOutput(loss=loss)
        scores = self.label_scores(input_ids, attention_mask)
        loss = None
        if labels is not None:  # the same token-averaged cross-entropy as in training, from the gold label's score
            loss = -scores.gather(1, labels[:, None]).sum() / self.target_mask[labels].sum()
        return SequenceClassifierOutput(loss=loss, logits=scores)

    def label_scores(self, input_ids, attention_mask) -> torch.Tensor:
        """[batch, num_labels]: log p(words of label | text), summed over the target tokens."""
        encoded = self.seq2seq.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        token_log_probs = seq2seq_target_log_probs(self.seq2seq, encoded, attention_mask, self.target_ids)
        return (token_log_probs * self.target_mask).sum(-1)

    def save_pretrained(self, output_dir, **kwargs):
        """Save the plain seq2seq checkpoint into `output_dir`, label_words written into its config (module docstring).
        """
        self.seq2seq.config.label_words = self.label_words
        self.seq2seq.save_pretrained(output_dir, **kwargs)


def usage_snippet(load_from: str, result) -> str:
    """transformers-only Python that loads a text-to-text output and classifies as the run did."""
    max_length = result.training.get("max_length") or 128
    texts = json.dumps(["I loved every minute of it.", "This is a disgrace and it has to stop."])
    return (
        "import torch\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
        f"model = AutoModelForSeq2SeqLM.from_pretrained({json.dumps(load_from)}).eval()\n"
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(load_from)})\n\n"
        "def classify(texts):\n"
        "    \"\"\"Score each label's words as the decoder's target; the most likely one is the prediction.\"\"\"\n"
        f"    inputs = tokenizer(texts, padding=True, truncation=True, max_length={max_length},\n"
        "                       return_tensors=\"pt\")\n"
        "    scores = []\n"
        "    with torch.no_grad():\n"
        "        for target in tokenizer(text_target=model.config.label_words)[\"input_ids\"]:\n"
        "            target = torch.tensor([target]).repeat(len(texts), 1)\n"
        "            log_probs = model(**inputs, labels=target).logits.float().log_softmax(-1)\n"
        "            scores.append(log_probs.gather(-1, target[..., None]).squeeze(-1).sum(-1))\n"
        "    probabilities = torch.stack(scores, dim=-1).softmax(-1)\n"
        "    return [{\"label\": model.config.id2label[int(p.argmax())], \"score\": float(p.max())}\n"
        "            for p in probabilities]\n\n"
        f"print(classify({texts}))"
    )
