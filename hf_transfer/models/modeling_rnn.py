"""Recurrent (LSTM/GRU) backbone as a transformers model family.

Self-contained apart from its configuration so that `save_pretrained` can ship it as remote code.
"""

import copy

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    CausalLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import logging

from .configuration_rnn import RNNConfig


logger = logging.get_logger(__name__)


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


class RNNPreTrainedModel(PreTrainedModel):
    """The base of the hft-rnn classes: config class, weight init (transformers' defaults; GRU weights Xavier-uniform
    and biases zero; the LM decoder's bias zeroed) and the word embeddings as input embeddings."""

    config_class = RNNConfig
    base_model_prefix = "model"
    # Trainer would otherwise skip loss scaling under gradient accumulation because forward takes **kwargs.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)  # covers Linear, Embedding and LSTM
        if isinstance(module, nn.GRU):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)
        elif isinstance(module, RNNForCausalLM):
            init.zeros_(module.decoder.bias)

    def get_input_embeddings(self):
        """The backbone's word embeddings (nn.Embedding [vocab_size, embedding_dim])."""
        return self.base_model.word_embeddings

    def set_input_embeddings(self, value):
        """Replace the backbone's word embeddings with `value`."""
        self.base_model.word_embeddings = value


class RNNModel(RNNPreTrainedModel):
    """Returns projected RNN outputs per token (`last_hidden_state`) and the projected pooled vector (`pooler_output`).

    Both have width `embedding_dim`: the `proj` Linear maps the RNN outputs there so that the causal LM can tie its
    decoder to the input embeddings, and it gives peft LoRA a pretrained layer to adapt (peft cannot adapt
    nn.LSTM/nn.GRU).
    """

    def __init__(self, config):
        """Word embeddings, the LSTM or GRU stack and `proj` (output_size -> embedding_dim)."""
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.proj = nn.Linear(config.output_size, config.embedding_dim)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> BaseModelOutputWithPooling(last_hidden_state [batch, seq,
        embedding_dim], pooler_output [batch, embedding_dim]); padding on either side gives the same outputs. A tuple
        when return_dict is false."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()
        lengths = mask.sum(dim=1)
        # Move real tokens to the front (stably) so left- and right-padded texts run the same packed sequence.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
        embeddings = self.dropout(self.word_embeddings(input_ids.gather(1, order)))
        packed = pack_padded_sequence(embeddings, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, final_state = self.rnn(packed)
        front_outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=input_ids.size(1))
        outputs = torch.zeros_like(front_outputs).scatter(
            1, order.unsqueeze(-1).expand_as(front_outputs), front_outputs
        )
        pooled = self._pool(outputs, mask, lengths, final_state)
        output = BaseModelOutputWithPooling(last_hidden_state=self.proj(outputs), pooler_output=self.proj(pooled))
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()

    def _pool(self, outputs, mask, lengths, final_state):
        if self.config.pooling == "last":
            # Final state of each direction of the top layer: forward after the last token, backward after the first.
            hidden = final_state[0] if isinstance(final_state, tuple) else final_state
            num_directions = 2 if self.config.bidirectional else 1
            return torch.cat(list(hidden[-num_directions:]), dim=-1)
        mask = mask.unsqueeze(-1)
        if self.config.pooling == "max":
            return outputs.masked_fill(~mask, torch.finfo(outputs.dtype).min).max(dim=1).values
        return (outputs * mask).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(outputs.dtype)


class RNNClassifierBase(RNNPreTrainedModel):
    """The backbone, dropout and a linear `classifier`: what the sequence and token heads share (their forward
    passes differ: one classifies the pooled vector, the other every token)."""

    def __init__(self, config):
        """The backbone (`model`), dropout and `classifier`, a Linear embedding_dim -> num_labels."""
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RNNModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.embedding_dim, config.num_labels)
        self.post_init()


class RNNForSequenceClassification(RNNClassifierBase):
    """A label (or labels) per text from the backbone's pooled vector."""

    # Copied from hf_transfer.models.modeling_attention.AttentionForSequenceClassification.forward with Attention->RNN
    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> SequenceClassifierOutput(loss, logits [batch, num_labels]) from
        the pooled vector; the loss (with `labels`) as sequence_classification_loss chooses it. A tuple when
        return_dict is false."""
        pooled = self.model(input_ids, attention_mask=attention_mask, return_dict=True).pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class RNNForTokenClassification(RNNClassifierBase):
    """A tag per token from the backbone's projected per-token RNN outputs (both directions when bidirectional)."""

    # Copied from hf_transfer.models.modeling_attention.AttentionForTokenClassification.forward with Attention->RNN
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


class RNNForCausalLM(RNNPreTrainedModel):
    """Next-token LM over a unidirectional RNN, decoder tied to the input embeddings.

    Its checkpoint (config with bidirectional=False) loads into `RNNForSequenceClassification` for fine-tuning.
    """

    _tied_weights_keys = {"decoder.weight": "model.word_embeddings.weight"}

    def __init__(self, config):
        if config.bidirectional:
            logger.warning("RNNForCausalLM cannot look ahead: using a copy of the config with bidirectional=False.")
            config = copy.deepcopy(config)
            config.bidirectional = False
        super().__init__(config)
        self.model = RNNModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.embedding_dim, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self):
        """The decoder (tied to the input embeddings)."""
        return self.decoder

    def set_output_embeddings(self, new_embeddings):
        """Replace the decoder with `new_embeddings`."""
        self.decoder = new_embeddings

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> CausalLMOutput(loss, logits [batch, seq, vocab_size]); with
        `labels` (the input ids, -100 ignored) the loss is the cross-entropy of each position's prediction of the
        next token. A tuple when return_dict is false."""
        outputs = self.model(input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        logits = self.decoder(self.dropout(outputs))
        loss = None
        if labels is not None:  # labels are the input ids; position t predicts token t+1, -100 is ignored
            shifted_logits = logits[:, :-1].reshape(-1, logits.size(-1))
            loss = CrossEntropyLoss()(shifted_logits, labels[:, 1:].reshape(-1))
        output = CausalLMOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


__all__ = [
    "RNNModel",
    "RNNForSequenceClassification",
    "RNNForTokenClassification",
    "RNNForCausalLM",
    "RNNPreTrainedModel",
]
