"""A pretrained encoder (BERT, MiniLM, GPT-2, ... any transformers AutoModel) with a linear classifier on a chosen
pooling of its last hidden states (`hft-pooled`), for checkpoints trained to be read that way.

all-MiniLM-L6-v2 was trained with mean pooling (its sentence-transformers `1_Pooling/config.json` says so) and never
through BERT's pooler, yet BertForSequenceClassification feeds its classifier tanh(dense(CLS)). A frozen or
linear-probe classifier on such a checkpoint reads the features the checkpoint was trained to give through this
model. Self-contained apart from its configuration so that `save_pretrained` ships it as remote code: the saved
folder loads with `trust_remote_code=True`; the encoder's own architecture comes from transformers.
"""

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_pooled import PooledConfig


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[batch, hidden] from [batch, tokens, hidden] states: the mean or max over tokens whose attention_mask is 1
    (as sentence-transformers' Pooling computes them), or the first token's state ("cls")."""
    if pooling == "cls":
        return hidden_states[:, 0]
    mask = (torch.ones(hidden_states.shape[:2], device=hidden_states.device) if attention_mask is None
            else attention_mask).unsqueeze(-1).to(hidden_states.dtype)
    if pooling == "max":
        return hidden_states.masked_fill(mask == 0, torch.finfo(hidden_states.dtype).min).max(dim=1).values
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class PooledForSequenceClassification(PreTrainedModel):
    """encoder -> pool(last_hidden_state) -> (L2-normalised, config.normalize) -> dropout -> `classifier` (Linear,
    hidden -> num_labels). `encoder`, when
    given, is a loaded encoder module to use (its pretrained weights); otherwise one is built from config.encoder."""

    config_class = PooledConfig
    base_model_prefix = "encoder"
    _no_split_modules = []
    # forward takes **kwargs but computes a plain mean loss: Trainer must scale it for gradient accumulation itself
    accepts_loss_kwargs = False

    def __init__(self, config: PooledConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder_config())
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        # gradient checkpointing is the encoder's (its layers hold the flag transformers sets): it supports it or not
        self.supports_gradient_checkpointing = getattr(self.encoder, "supports_gradient_checkpointing", False)
        self.post_init()

    def _init_weights(self, module):
        if module is self.classifier:  # the encoder keeps its own (pretrained or its family's) initialisation
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        """The encoder's token embedding module (peft and resize_token_embeddings look it up)."""
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, return_dict=None,
                **kwargs):
        """input_ids / attention_mask / token_type_ids [batch, seq] -> SequenceClassifierOutput(loss, logits
        [batch, num_labels]); the loss (with `labels`: [batch] class ids, or [batch, num_labels] 0/1 for multi-label)
        is cross-entropy, or BCE-with-logits for multi-label. A tuple when return_dict is false."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden_states = self.encoder(**inputs, return_dict=True).last_hidden_state
        pooled = pool(hidden_states, attention_mask, self.config.pooling)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if labels.dtype in (torch.long, torch.int) and self.config.problem_type != "multi_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.config.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels.to(logits.dtype))
        output = SequenceClassifierOutput(loss=loss, logits=logits)
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()
