"""Zero-shot classification with pretrained checkpoints, one method per module behind `method=`:

    nli        entailment of "This example is {label}." by the text (an NLI cross-encoder)
    lm         log-likelihood of each label's verbalizer after a prompt (causal LM), optionally calibrated
    seq2seq    log-likelihood of each label's verbalizer as the decoder target (T5, Flan-T5, BART)
    embedding  cosine similarity of sentence embeddings of the text and each label description

`recipes/zeroshot.py`, `hf-transfer zeroshot` and `run_zeroshot(config)` write an output folder like classify's;
`ZeroShotClassifier` is the in-memory API; a classify run adds one as a baseline with `zeroshot_baseline.method=`.
"""

from .base import METHODS, ZeroShotMethod, get_method, register_method
from . import embedding, lm, nli, seq2seq  # noqa: F401,E402  (each import registers its method)
from .run import (ZeroShotBaseline, ZeroShotClassifier, ZeroShotConfig, prepare_baseline,  # noqa: E402
                  run_zeroshot)

__all__ = ["METHODS", "ZeroShotBaseline", "ZeroShotClassifier", "ZeroShotConfig", "ZeroShotMethod", "get_method",
           "prepare_baseline", "register_method", "run_zeroshot"]
