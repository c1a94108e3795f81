"""Pretrain a small language model on a plain-text corpus, from scratch or from a checkpoint.

    corpus (.txt files) -> tokenizer (trained with `tokenizers`, or reused) -> fixed-length token blocks
    -> Trainer with the architecture's objective -> a folder the stock Auto classes load

Objectives: masked LM (BERT and our attention/TextCNN encoders), causal LM (GPT-2, our RNN) and T5 span
corruption. Runs checkpoint every `save_steps` and resume exactly from the last checkpoint when re-run with the same
`output_dir`. The output also loads with AutoModelForSequenceClassification, so it can be fine-tuned later.

Modules: architectures (what can be built), corpus (files, blocks, split), tokenizer (trained or reused), model
(built or loaded), objectives (the collators), run (run_pretraining: the Trainer, checkpoints, resuming), record
(metrics.json and the returned summary).
"""

from .architectures import ARCHITECTURES, Architecture
from .objectives import LanguageModelingCollator, SpanCorruptionCollator
from .run import run_pretraining

__all__ = ["ARCHITECTURES", "Architecture", "LanguageModelingCollator", "SpanCorruptionCollator", "run_pretraining"]
