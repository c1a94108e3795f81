"""hf_transfer's own backbones as transformers Auto models, plus static word-vector initialisation.

Importing this package registers `hft-textcnn`, `hft-rnn` and `hft-attention` (and `hft-pooled`, a pretrained
encoder read through a chosen pooling, for AutoModelForSequenceClassification only) with AutoConfig, AutoModel,
AutoModelForSequenceClassification, AutoModelForTokenClassification and AutoModelForMaskedLM / AutoModelForCausalLM,
and marks every class for
its Auto class so that `save_pretrained` copies the configuration/modeling files next to the weights:
the saved directory then loads without hf_transfer via `trust_remote_code=True`.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_attention import AttentionConfig
from .configuration_pooled import PooledConfig
from .configuration_rnn import RNNConfig
from .configuration_textcnn import TextCNNConfig
from .modeling_attention import (
    AttentionForMaskedLM,
    AttentionForSequenceClassification,
    AttentionForTokenClassification,
    AttentionModel,
    AttentionPreTrainedModel,
)
from .modeling_pooled import PooledForSequenceClassification
from .modeling_rnn import (
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNModel,
    RNNPreTrainedModel,
)
from .modeling_textcnn import (
    TextCNNForMaskedLM,
    TextCNNForSequenceClassification,
    TextCNNForTokenClassification,
    TextCNNModel,
    TextCNNPreTrainedModel,
)
from .word_vectors import init_embeddings_from_vectors, load_word_vectors


# peft LoRA wraps nn.Linear, nn.Conv1d/2d and nn.Embedding, never nn.LSTM/nn.GRU. Names match module-name suffixes.
# - TextCNN: the convolution of every filter width (`convs.<i>.conv`).
# - RNN: the input embeddings and the backbone's `proj` Linear after the recurrent layers; the LSTM/GRU itself
#   stays frozen under LoRA.
# - Attention: every projection of every layer.
DEFAULT_LORA_TARGETS = {
    "hft-textcnn": ["conv"],
    "hft-rnn": ["word_embeddings", "proj"],
    "hft-attention": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}

# Name of the sequence- and token-classification head module per model type (keep it trainable, e.g. peft
# `modules_to_save`).
HEAD_MODULES = {
    "hft-textcnn": "classifier",
    "hft-rnn": "classifier",
    "hft-attention": "classifier",
}

# Every Auto class each config answers to.
_AUTO_CLASSES = {
    TextCNNConfig: {
        AutoModel: TextCNNModel,
        AutoModelForSequenceClassification: TextCNNForSequenceClassification,
        AutoModelForTokenClassification: TextCNNForTokenClassification,
        AutoModelForMaskedLM: TextCNNForMaskedLM,
    },
    RNNConfig: {
        AutoModel: RNNModel,
        AutoModelForSequenceClassification: RNNForSequenceClassification,
        AutoModelForTokenClassification: RNNForTokenClassification,
        AutoModelForCausalLM: RNNForCausalLM,
    },
    AttentionConfig: {
        AutoModel: AttentionModel,
        AutoModelForSequenceClassification: AttentionForSequenceClassification,
        AutoModelForTokenClassification: AttentionForTokenClassification,
        AutoModelForMaskedLM: AttentionForMaskedLM,
    },
    PooledConfig: {AutoModelForSequenceClassification: PooledForSequenceClassification},
}


def _register():
    for config_class, model_classes in _AUTO_CLASSES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class("AutoConfig")
        for auto_class, model_class in model_classes.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            # Makes save_pretrained copy the code files (the config's auto_map already names every class).
            model_class.register_for_auto_class(auto_class.__name__)


_register()

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "HEAD_MODULES",
    "PooledConfig",
    "PooledForSequenceClassification",
    "AttentionConfig",
    "AttentionForMaskedLM",
    "AttentionForSequenceClassification",
    "AttentionForTokenClassification",
    "AttentionModel",
    "AttentionPreTrainedModel",
    "RNNConfig",
    "RNNForCausalLM",
    "RNNForSequenceClassification",
    "RNNForTokenClassification",
    "RNNModel",
    "RNNPreTrainedModel",
    "TextCNNConfig",
    "TextCNNForMaskedLM",
    "TextCNNForSequenceClassification",
    "TextCNNForTokenClassification",
    "TextCNNModel",
    "TextCNNPreTrainedModel",
    "init_embeddings_from_vectors",
    "load_word_vectors",
]
