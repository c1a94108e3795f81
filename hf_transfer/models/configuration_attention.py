"""Configuration for the small pre-LN self-attention encoder."""

from transformers import PretrainedConfig


class AttentionConfig(PretrainedConfig):
    """Token + learned position embeddings -> N pre-LN transformer layers -> mean or CLS pooling."""

    model_type = "hft-attention"

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=512,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pooling="mean",
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        tie_word_embeddings=True,
        **kwargs,
    ):
        """Sizes are counts (hidden_size: width of every token state; intermediate_size: the feed-forward width);
        pooling "mean" or "cls". Raises ValueError when hidden_size is not divisible by num_attention_heads, or for
        another pooling."""
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"AttentionConfig: hidden_size={hidden_size} must be divisible by "
                f"num_attention_heads={num_attention_heads}; change one of them."
            )
        if pooling not in ("mean", "cls"):
            raise ValueError(f"AttentionConfig: pooling={pooling!r} is not supported; use 'mean' or 'cls'.")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.pooling = pooling
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.tie_word_embeddings = tie_word_embeddings
        # Lets a directory saved from this config load without hf_transfer (trust_remote_code=True); entries a
        # saved config lacks (a head added since) are filled in.
        kwargs["auto_map"] = {
            "AutoConfig": "configuration_attention.AttentionConfig",
            "AutoModel": "modeling_attention.AttentionModel",
            "AutoModelForSequenceClassification": "modeling_attention.AttentionForSequenceClassification",
            "AutoModelForTokenClassification": "modeling_attention.AttentionForTokenClassification",
            "AutoModelForMaskedLM": "modeling_attention.AttentionForMaskedLM",
            **(kwargs.get("auto_map") or {}),
        }
        super().__init__(pad_token_id=pad_token_id, **kwargs)
