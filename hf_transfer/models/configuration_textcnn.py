"""Configuration for the TextCNN backbone (Kim 2014)."""

from transformers import PretrainedConfig


class TextCNNConfig(PretrainedConfig):
    """Embedding -> parallel 1-D convolutions of several widths -> ReLU -> max-over-time pooling."""

    model_type = "hft-textcnn"

    def __init__(
        self,
        vocab_size=30522,
        embedding_dim=128,
        filter_sizes=(3, 4, 5),
        num_filters=100,
        dropout=0.5,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        tie_word_embeddings=True,
        **kwargs,
    ):
        """filter_sizes: the convolution widths in tokens (Kim 2014's 3, 4, 5), num_filters: the filters per width
        (hidden_size = num_filters x len(filter_sizes))."""
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.filter_sizes = list(filter_sizes)
        self.num_filters = num_filters
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.tie_word_embeddings = tie_word_embeddings
        # Lets a directory saved from this config load without hf_transfer (trust_remote_code=True); entries a
        # saved config lacks (a head added since) are filled in.
        kwargs["auto_map"] = {
            "AutoConfig": "configuration_textcnn.TextCNNConfig",
            "AutoModel": "modeling_textcnn.TextCNNModel",
            "AutoModelForSequenceClassification": "modeling_textcnn.TextCNNForSequenceClassification",
            "AutoModelForTokenClassification": "modeling_textcnn.TextCNNForTokenClassification",
            "AutoModelForMaskedLM": "modeling_textcnn.TextCNNForMaskedLM",
            **(kwargs.get("auto_map") or {}),
        }
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def hidden_size(self):
        """Width of the per-token features and of the pooled vector."""
        return self.num_filters * len(self.filter_sizes)
