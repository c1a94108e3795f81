"""TextCNN (Kim 2014) as a transformers model family.

Self-contained apart from its configuration so that `save_pretrained` can ship it as remote code.
"""

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .configuration_textcnn import TextCNNConfig


# Copied from hf_transfer.models.modeling_attention.sequence_classification_loss
def sequence_classification_loss(config, logits, labels):
    """BERT's loss selection: regression, single-label or multi-label from `config.problem_type`."""
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if num_labels == 1:
            return MSELoss()(logits.squeeze(-1), labels.view(-1).to(logits.dtype))
        return MSELoss()(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return CrossEntropyLoss()(logits.view(-1, num_labels), labels.view(-1))
    return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


class TextCNNConvBranch(nn.Module):
    """One filter width. Wrapping the conv gives it the plain name `conv` that peft LoRA can target."""

    def __init__(self, config, width):
        """A Conv1d of `width` tokens, embedding_dim -> num_filters channels, with "same" padding."""
        super().__init__()
        self.conv = nn.Conv1d(config.embedding_dim, config.num_filters, width)
        # "Same" padding keeps one feature vector per token, which the masked-LM head needs.
        self.same_padding = ((width - 1) // 2, width // 2)

    def forward(self, embeddings):
        """[batch, embedding_dim, seq] -> ReLU features [batch, num_filters, seq]."""
        return torch.relu(self.conv(nn.functional.pad(embeddings, self.same_padding)))


class TextCNNPreTrainedModel(PreTrainedModel):
    """The base of the hft-textcnn classes: config class, weight init (transformers' defaults; convolutions He-normal
    for the ReLU; the MLM decoder's bias zeroed) and the word embeddings as input embeddings."""

    config_class = TextCNNConfig
    base_model_prefix = "model"
    # Trainer would otherwise skip loss scaling under gradient accumulation because forward takes **kwargs.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, nn.Conv1d):  # He init suits the ReLU that follows
            init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, TextCNNLMHead):
            init.zeros_(module.decoder.bias)

    def get_input_embeddings(self):
        """The backbone's word embeddings (nn.Embedding [vocab_size, embedding_dim])."""
        return self.base_model.word_embeddings

    def set_input_embeddings(self, value):
        """Replace the backbone's word embeddings with `value`."""
        self.base_model.word_embeddings = value


class TextCNNModel(TextCNNPreTrainedModel):
    """Returns per-token conv features (`last_hidden_state`) and their masked max over time (`pooler_output`)."""

    def __init__(self, config):
        """Word embeddings and one convolution branch per filter size."""
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        self.convs = nn.ModuleList(TextCNNConvBranch(config, width) for width in config.filter_sizes)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> BaseModelOutputWithPooling(last_hidden_state [batch, seq,
        hidden_size], pooler_output [batch, hidden_size]); padding never changes a text's features. A tuple when
        return_dict is false."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.unsqueeze(-1).bool()
        # Zeroed padding embeddings equal the convolution's own zero padding: padding never changes a text's features.
        embeddings = self.word_embeddings(input_ids) * mask
        features = torch.cat([branch(embeddings.transpose(1, 2)) for branch in self.convs], dim=1).transpose(1, 2)
        # ReLU features are >= 0, so zeroing padded positions is enough to keep them out of the max.
        features = features * mask
        pooled = features.max(dim=1).values
        output = BaseModelOutputWithPooling(last_hidden_state=features, pooler_output=pooled)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class TextCNNClassifierBase(TextCNNPreTrainedModel):
    """The backbone, dropout and a linear `classifier`: what the sequence and token heads share (their forward
    passes differ: one classifies the pooled vector, the other every token)."""

    def __init__(self, config):
        """The backbone (`model`), dropout and `classifier`, a Linear hidden_size -> num_labels."""
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = TextCNNModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class TextCNNForSequenceClassification(TextCNNClassifierBase):
    """A label (or labels) per text from the max-over-time pooled features (Kim 2014)."""

    # Copied from hf_transfer.models.modeling_attention.AttentionForSequenceClassification.forward with Attention->TextCNN
    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> SequenceClassifierOutput(loss, logits [batch, num_labels]) from
        the pooled vector; the loss (with `labels`) as sequence_classification_loss chooses it. A tuple when
        return_dict is false."""
        pooled = self.model(input_ids, attention_mask=attention_mask, return_dict=True).pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class TextCNNForTokenClassification(TextCNNClassifierBase):
    """A tag per token from the backbone's per-token features: the convolutions use "same" padding, so each token
    keeps its own feature vector (its window of max(filter_sizes) tokens), before max-over-time pooling."""

    # Copied from hf_transfer.models.modeling_attention.AttentionForTokenClassification.forward with Attention->TextCNN
    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> TokenClassifierOutput(loss, logits [batch, seq, num_labels]);
        the loss (with `labels` [batch, seq]) is the cross-entropy over positions whose label is not -100. A tuple
        when return_dict is false."""
        hidden_states = self.model(input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        logits = self.classifier(self.dropout(hidden_states))
        loss = None
        if labels is not None:  # -100 marks special tokens, padding and later subwords
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        output = TokenClassifierOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class TextCNNLMHead(nn.Module):
    """Per-token features -> embedding space -> vocabulary (decoder tied to the input embeddings)."""

    def __init__(self, config):
        """dense (hidden_size -> embedding_dim), LayerNorm, decoder (embedding_dim -> vocab_size)."""
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_dim)
        self.layer_norm = nn.LayerNorm(config.embedding_dim, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.embedding_dim, config.vocab_size)

    def forward(self, features):
        """[batch, seq, hidden_size] -> [batch, seq, vocab_size] logits."""
        return self.decoder(self.layer_norm(nn.functional.gelu(self.dense(features))))


class TextCNNForMaskedLM(TextCNNPreTrainedModel):
    """The TextCNN with an MLM head, for pretraining (hf_transfer.pretraining, objective mlm)."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.word_embeddings.weight"}

    def __init__(self, config):
        """The backbone, dropout and the LM head, its decoder tied to the word embeddings."""
        super().__init__(config)
        self.model = TextCNNModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.lm_head = TextCNNLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        """The LM head's decoder (tied to the input embeddings)."""
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        """Replace the LM head's decoder with `new_embeddings`."""
        self.lm_head.decoder = new_embeddings

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> MaskedLMOutput(loss, logits [batch, seq, vocab_size]); the loss
        (with `labels`) is the cross-entropy over positions whose label is not -100. A tuple when return_dict is
        false."""
        features = self.model(input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        logits = self.lm_head(self.dropout(features))
        loss = None
        if labels is not None:  # -100 marks positions that were not masked
            loss = CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1))
        output = MaskedLMOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


__all__ = [
    "TextCNNModel",
    "TextCNNForSequenceClassification",
    "TextCNNForTokenClassification",
    "TextCNNForMaskedLM",
    "TextCNNPreTrainedModel",
]
