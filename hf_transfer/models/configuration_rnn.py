"""Configuration for the recurrent (LSTM/GRU) backbone."""

from transformers import PretrainedConfig


class RNNConfig(PretrainedConfig):
    """Embedding -> (bi)LSTM or (bi)GRU with `hidden_size` units per direction -> mean/max/last pooling
    -> Linear `proj` back to `embedding_dim` (the width of the model's outputs).

    `RNNForCausalLM` needs `bidirectional=False` (a backward direction would see the tokens it predicts);
    it switches the flag off itself so that its checkpoint loads into a matching classifier later.
    """

    model_type = "hft-rnn"

    def __init__(
        self,
        vocab_size=30522,
        embedding_dim=128,
        hidden_size=256,
        num_layers=1,
        cell="lstm",
        bidirectional=True,
        pooling="mean",
        dropout=0.3,
        initializer_range=0.02,
        pad_token_id=0,
        tie_word_embeddings=True,
        **kwargs,
    ):
        """cell "lstm" or "gru", pooling "mean", "max" or "last"; hidden_size counts units per direction. Raises
        ValueError for another cell or pooling."""
        if cell not in ("lstm", "gru"):
            raise ValueError(f"RNNConfig: cell={cell!r} is not supported; use 'lstm' or 'gru'.")
        if pooling not in ("mean", "max", "last"):
            raise ValueError(f"RNNConfig: pooling={pooling!r} is not supported; use 'mean', 'max' or 'last'.")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.tie_word_embeddings = tie_word_embeddings
        # Lets a directory saved from this config load without hf_transfer (trust_remote_code=True); entries a
        # saved config lacks (a head added since) are filled in.
        kwargs["auto_map"] = {
            "AutoConfig": "configuration_rnn.RNNConfig",
            "AutoModel": "modeling_rnn.RNNModel",
            "AutoModelForSequenceClassification": "modeling_rnn.RNNForSequenceClassification",
            "AutoModelForTokenClassification": "modeling_rnn.RNNForTokenClassification",
            "AutoModelForCausalLM": "modeling_rnn.RNNForCausalLM",
            **(kwargs.get("auto_map") or {}),
        }
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def output_size(self):
        """Width of the RNN outputs: both directions concatenated when bidirectional."""
        return self.hidden_size * (2 if self.bidirectional else 1)
