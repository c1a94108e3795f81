"""embedding: cosine similarity between a text's sentence embedding and each label description's.

Embeddings are made as sentence-transformers makes them for MiniLM-style models: mean pooling of the last hidden
states over the attention mask, then L2 normalisation. The mean-pooled vectors of a split come from the feature
store (hf_transfer.features: one fp32 pass per split; in a study shared with the frozen and linear-probe arms that
read the same backbone by mean pooling). Single-label probabilities are a softmax of the similarities
times `scale` (20, the scale of the contrastive loss such models are trained with); in multi-label tasks a label is
predicted when its similarity exceeds `threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModel

from ..backbones import load_tokenizer
from ..errors import UserError
from ..features import pooled_reader, split_features
from ..label_texts import per_label_texts
from .base import ZeroShotMethod, check_template, model_kind, register_method, wrong_model


@dataclass
class EmbeddingOptions:
    """options of method=embedding (each field's comment says what it does)."""

    template: str = "{label}"  # the text embedded for a label; {label} is replaced by the label's description
    label_descriptions: dict[str, str] = field(default_factory=dict)  # label -> text for {label}; default: the name
    scale: float = 20.0  # similarities are multiplied by it before the softmax over labels
    threshold: float = 0.3  # multi-label tasks: labels whose similarity exceeds it are predicted


@register_method
class EmbeddingMethod(ZeroShotMethod):
    """method=embedding: cosine similarity between the mean-pooled, L2-normalised last hidden states of the text and of
    each label's prompt (the sentence-transformers recipe for MiniLM-style encoders)."""

    name = "embedding"
    description = "cosine similarity of mean-pooled sentence embeddings of the text and of each label description"
    options_class = EmbeddingOptions
    supports_multi_label = True

    def check_options(self):
        """Raises UserError for a template without {label}, or scale <= 0."""
        check_template(self.options.template, "{label}", "A review that is {label}.")
        if self.options.scale <= 0:
            raise UserError(f"options.scale must be positive, got {self.options.scale}")

    def check_model(self, config, model_name):
        """Raises UserError for a decoder or encoder-decoder: the method needs a text encoder."""
        if model_kind(config) in ("decoder", "encoder-decoder"):
            raise wrong_model(model_name, config, self.name, "a text encoder",
                              "use a sentence-embedding encoder such as minilm-l6, or method=lm / seq2seq for this model")

    def load(self, model, device):
        """Load the tokenizer and AutoModel (the encoder without a head) onto `device`."""
        self.device = device
        self.tokenizer = load_tokenizer(model)  # with a pad token, which batches need
        self.model = AutoModel.from_pretrained(model.location, **model.load_kwargs).to(device).eval()
        self.reader = pooled_reader(self.model, "mean", self.tokenizer.pad_token_id, model.name)

    def label_prompts(self, label_names):
        """{label: the template with {label} replaced by its description (default: the name)}."""
        descriptions = per_label_texts(self.options.label_descriptions, label_names, str, "options.label_descriptions")
        return {label: self.options.template.replace("{label}", text) for label, text in zip(label_names, descriptions)}

    def prepare(self, label_names, multi_label):
        """Embed every label prompt once (untruncated): [num_labels, hidden] unit vectors."""
        self.label_embeddings = self.embed(list(self.label_prompts(label_names).values()), max_length=None,
                                           split="label prompts")
        self.multi_label = multi_label

    def probabilities(self, texts, max_length, split="texts"):
        """(len(texts), num_labels): softmax(scale x cosine) over the labels; multi-label: sigmoid(scale x (cosine -
        threshold)) per label, above 0.5 exactly when the cosine exceeds threshold. `split` names the texts in the
        log."""
        similarities = self.embed(texts, max_length, split) @ self.label_embeddings.T
        if self.multi_label:
            return torch.sigmoid(self.options.scale * (similarities - self.options.threshold))  # > 0.5 from threshold
        return (self.options.scale * similarities).softmax(-1)

    def split_probabilities(self, texts, max_length, batch_size, desc):
        """`probabilities` of a whole split at once, its embeddings from the feature store (`desc` "..., SPLIT" names
        the split in the log; batch_size: unused, the store batches by tokens)."""
        return self.probabilities(texts, max_length, split=desc.rpartition(", ")[2]).numpy()

    def embed(self, texts: list[str], max_length: int | None, split: str = "texts") -> torch.Tensor:
        """[len(texts), hidden] float32: the attention-masked mean of the last hidden states, L2 normalised (texts
        truncated to `max_length` tokens; None: the tokenizer's limit); `split` names them in the log."""
        columns = dict(self.tokenizer(texts, truncation=True, max_length=max_length))
        return torch.nn.functional.normalize(torch.as_tensor(split_features(self.reader, columns, split)), dim=-1)
