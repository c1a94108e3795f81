"""Small pre-LN self-attention encoder as a transformers model family.

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

from .configuration_attention import AttentionConfig


# The original of the copies in modeling_textcnn.py and modeling_rnn.py (each modeling file must stand alone as
# remote code); tests/test_architecture.py checks every "Copied from" copy still equals it.
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


class AttentionSelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (plain Linear layers peft LoRA can target)."""

    def __init__(self, config):
        """q/k/v/out projections of hidden_size each; heads split hidden_size evenly."""
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.dropout = config.attention_probs_dropout_prob
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states, key_padding_bias):
        """hidden_states [batch, seq, hidden] and key_padding_bias [batch, 1, 1, seq] (0 for real tokens, the dtype's
        minimum for padding) -> [batch, seq, hidden], by torch's scaled_dot_product_attention."""
        batch_size, seq_len, hidden_size = hidden_states.shape

        def split_heads(states):
            return states.view(batch_size, seq_len, self.num_heads, -1).transpose(1, 2)

        context = nn.functional.scaled_dot_product_attention(
            split_heads(self.q_proj(hidden_states)),
            split_heads(self.k_proj(hidden_states)),
            split_heads(self.v_proj(hidden_states)),
            attn_mask=key_padding_bias,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(context.transpose(1, 2).reshape(batch_size, seq_len, hidden_size))


class AttentionLayer(nn.Module):
    """Pre-LN block: x + attn(LN(x)), then x + fc2(gelu(fc1(LN(x))))."""

    def __init__(self, config):
        """The block's two LayerNorms, self-attention and feed-forward (fc1, fc2) layers."""
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = AttentionSelfAttention(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, key_padding_bias):
        """[batch, seq, hidden] -> [batch, seq, hidden]; key_padding_bias as in AttentionSelfAttention."""
        hidden_states = hidden_states + self.dropout(
            self.attention(self.attention_norm(hidden_states), key_padding_bias)
        )
        feed_forward = self.fc2(self.dropout(nn.functional.gelu(self.fc1(self.ffn_norm(hidden_states)))))
        return hidden_states + self.dropout(feed_forward)


class AttentionPreTrainedModel(PreTrainedModel):
    """The base of the hft-attention classes: config class, weight init (transformers' defaults, the MLM decoder's bias
    zeroed) and the word embeddings as input embeddings."""

    config_class = AttentionConfig
    base_model_prefix = "model"
    # Trainer would otherwise skip loss scaling under gradient accumulation because forward takes **kwargs.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)  # covers Linear, Embedding and LayerNorm
        if isinstance(module, AttentionLMHead):
            init.zeros_(module.decoder.bias)

    def get_input_embeddings(self):
        """The backbone's word embeddings (nn.Embedding [vocab_size, hidden_size])."""
        return self.base_model.word_embeddings

    def set_input_embeddings(self, value):
        """Replace the backbone's word embeddings with `value`."""
        self.base_model.word_embeddings = value


class AttentionModel(AttentionPreTrainedModel):
    """Returns the final per-token states (`last_hidden_state`) and their mean or CLS pooling (`pooler_output`)."""

    def __init__(self, config):
        """Word and learned position embeddings, num_hidden_layers pre-LN blocks and a final LayerNorm."""
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(AttentionLayer(config) for _ in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> BaseModelOutputWithPooling(last_hidden_state [batch, seq,
        hidden], pooler_output [batch, hidden]); a tuple when return_dict is false. Raises ValueError for more than
        max_position_embeddings tokens."""
        if input_ids.size(1) > self.config.max_position_embeddings:
            raise ValueError(
                f"Input has {input_ids.size(1)} tokens but max_position_embeddings="
                f"{self.config.max_position_embeddings}; truncate the input (tokenizer truncation/max_length)."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()
        # Positions count real tokens only, so left padding does not shift them.
        position_ids = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        hidden_states = self.dropout(self.word_embeddings(input_ids) + self.position_embeddings(position_ids))
        # Additive bias (not -inf) so that an all-padding row cannot turn into NaN.
        dtype = hidden_states.dtype
        key_padding_bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(dtype).min
        )[:, None, None, :]
        for layer in self.layers:
            hidden_states = layer(hidden_states, key_padding_bias)
        hidden_states = self.final_norm(hidden_states)
        pooled = self._pool(hidden_states, mask)
        output = BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()

    def _pool(self, hidden_states, mask):
        if self.config.pooling == "cls":
            first_real_token = mask.long().argmax(dim=1)
            return hidden_states[torch.arange(hidden_states.size(0), device=hidden_states.device), first_real_token]
        mask = mask.unsqueeze(-1)
        return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1).to(hidden_states.dtype)


class AttentionClassifierBase(AttentionPreTrainedModel):
    """The backbone, dropout and a linear `classifier`: what the sequence and token heads share (their forward
    passes differ: one classifies the pooled vector, the other every token)."""

    def __init__(self, config):
        """The backbone (`model`), dropout and `classifier`, a Linear hidden_size -> num_labels."""
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = AttentionModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class AttentionForSequenceClassification(AttentionClassifierBase):
    """A label (or labels) per text from the encoder's pooled vector."""

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        """input_ids and attention_mask [batch, seq] -> SequenceClassifierOutput(loss, logits [batch, num_labels]) from
        the pooled vector; the loss (with `labels`) as sequence_classification_loss chooses it. A tuple when
        return_dict is false."""
        pooled = self.model(input_ids, attention_mask=attention_mask, return_dict=True).pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class AttentionForTokenClassification(AttentionClassifierBase):
    """A tag per token from the encoder's final per-token states."""

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


class AttentionLMHead(nn.Module):
    """BERT-style MLM head: dense -> GELU -> LayerNorm -> decoder (tied to the input embeddings)."""

    def __init__(self, config):
        """dense (hidden -> hidden), LayerNorm, decoder (hidden -> vocab_size)."""
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states):
        """[batch, seq, hidden] -> [batch, seq, vocab_size] logits."""
        return self.decoder(self.layer_norm(nn.functional.gelu(self.dense(hidden_states))))


class AttentionForMaskedLM(AttentionPreTrainedModel):
    """The encoder with the MLM head, for pretraining (hf_transfer.pretraining, objective mlm)."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.word_embeddings.weight"}

    def __init__(self, config):
        """The backbone and the LM head, its decoder tied to the word embeddings."""
        super().__init__(config)
        self.model = AttentionModel(config)
        self.lm_head = AttentionLMHead(config)
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
        hidden_states = self.model(input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:  # -100 marks positions that were not masked
            loss = CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1))
        output = MaskedLMOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


__all__ = [
    "AttentionModel",
    "AttentionForSequenceClassification",
    "AttentionForTokenClassification",
    "AttentionForMaskedLM",
    "AttentionPreTrainedModel",
]
