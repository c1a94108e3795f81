"""Configuration of a pretrained encoder read through a chosen pooling (`hft-pooled`): see modeling_pooled."""

from transformers import AutoConfig, PretrainedConfig

POOLINGS = ("mean", "cls", "max")


class PooledConfig(PretrainedConfig):
    """`encoder`: the wrapped encoder's own config (a dict, as its config.json holds it); `pooling`: how its
    per-token states [batch, tokens, hidden] become one vector per text: "mean" or "max" over the real (non-padding)
    tokens, or "cls", the first token's state (sentence-transformers' pooling modes); `normalize`: the pooled
    vector scaled to unit L2 norm before the classifier (sentence-transformers' Normalize module)."""

    model_type = "hft-pooled"

    def __init__(self, encoder=None, pooling="mean", normalize=False, classifier_dropout=0.1, **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"PooledConfig: pooling={pooling!r} is not supported; use one of {', '.join(POOLINGS)}.")
        super().__init__(**kwargs)
        self.encoder = encoder.to_dict() if isinstance(encoder, PretrainedConfig) else dict(encoder or {})
        self.pooling = pooling
        self.normalize = normalize
        self.classifier_dropout = classifier_dropout

    def encoder_config(self) -> PretrainedConfig:
        """The wrapped encoder's config object."""
        settings = dict(self.encoder)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's last hidden states, i.e. of the pooled features (the classifier's input)."""
        return self.encoder_config().get_text_config().hidden_size
