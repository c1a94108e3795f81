"""Label descriptions for the zero-shot methods: the dataset asset's defaults, and choosing among candidates on
the validation split.

A dataset asset may carry descriptions per method (hf_transfer.assets.Asset.label_descriptions, chosen on its
validation split): `hf-transfer zeroshot method=embedding model=minilm-l6` on rotten-tomatoes embeds "An excellent,
enjoyable film." rather than the bare label name "fresh" (test accuracy 0.704 instead of 0.494). Descriptions the
user gives (options.label_descriptions) always win.

`choose_options` scores candidate option sets (descriptions, templates, verbalizers) on the validation split alone
and returns the best with every candidate's score, for the run's record; the test split is never read, so the
test score of the chosen options stays a held-out estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..assets import ASSETS
from ..config import from_dict
from ..data import TaskData
from ..errors import UserError
from .base import METHODS, ZeroShotMethod

SELECTION_SPLIT = "validation"


def with_dataset_descriptions(method: str, options: dict[str, Any], dataset: str,
                              label_names: list[str] | None = None) -> dict[str, Any]:
    """`options` with the dataset asset's label descriptions for `method` filled in, when the method takes
    label_descriptions and the options give none; unchanged otherwise (not an asset, no descriptions for this
    method). With `label_names`, only descriptions of those labels are used."""
    method_class = METHODS.get(method)
    asset = ASSETS.get(dataset)
    if method_class is None or asset is None or options.get("label_descriptions"):
        return dict(options)
    if "label_descriptions" not in getattr(method_class.options_class, "__dataclass_fields__", {}):
        return dict(options)
    descriptions = {label: text for label, text in asset.label_descriptions.get(method, {}).items()
                    if label_names is None or label in label_names}
    return {**options, "label_descriptions": descriptions} if descriptions else dict(options)


def choose_options(classifier, task: TaskData, base_options: dict[str, Any],
                   candidates: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict]]:
    """(chosen options, scores): the candidate option set (each merged over `base_options`) whose predictions are
    most accurate on the validation split, and [{options, validation_accuracy}] for every candidate in order.

    `classifier` is a loaded hf_transfer.zeroshot.ZeroShotClassifier; its method is re-prepared for each candidate
    (the checkpoint loads once) and left prepared with the chosen options. Ties go to the earlier candidate. Reads
    task.splits["validation"] only. Raises UserError for a candidate that is not a mapping or has bad options.
    """
    method: ZeroShotMethod = classifier.method
    texts, labels = task.texts(SELECTION_SPLIT), np.asarray(task.splits[SELECTION_SPLIT]["labels"])
    scores = []
    for index, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            raise UserError(f"candidates[{index}] must be a mapping of options, e.g. {{template: ...}}; got "
                            f"{candidate!r}")
        options = {**base_options, **candidate}
        _prepare(method, options, classifier.label_names, classifier.multi_label, f"candidates[{index}].")
        predicted = classifier.decide(classifier.predict_proba(texts, desc=f"candidate {index + 1}/{len(candidates)}"))
        accuracy = float((predicted == labels).all(-1).mean() if classifier.multi_label else (predicted == labels).mean())
        scores.append({"options": options, f"{SELECTION_SPLIT}_accuracy": accuracy})
    best = max(range(len(scores)), key=lambda i: (scores[i][f"{SELECTION_SPLIT}_accuracy"], -i))
    _prepare(method, scores[best]["options"], classifier.label_names, classifier.multi_label, "")
    return scores[best]["options"], scores


def _prepare(method: ZeroShotMethod, options: dict[str, Any], label_names: list[str], multi_label: bool,
             prefix: str) -> None:
    method.options = from_dict(method.options_class, dict(options), prefix=f"{prefix}options.")
    method.check_options()
    method.label_prompts(label_names)  # per-label options name known labels
    method.prepare(label_names, multi_label)
