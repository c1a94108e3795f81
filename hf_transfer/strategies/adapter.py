"""Parameter-efficient transfer with peft adapters (`strategy=adapter`).

    strategy=adapter strategy_options.method=lora strategy_options.r=16 strategy_options.lora_alpha=32
    strategy=adapter strategy_options.method=dora
    strategy=adapter strategy_options.method=ia3
    strategy=adapter strategy_options.method=prompt-tuning strategy_options.num_virtual_tokens=20
    strategy=adapter strategy_options.method=lora strategy_options.merge=true

Options: `method` is any peft method (`lora`, `ia3`, `prefix-tuning`, `prompt-tuning`, `p-tuning`, `loha`, `lokr`,
`adalora`, `vera`, ...; case, `-` and `_` do not matter) or `dora` (LoRA with use_dora=true); `merge` (see Output);
every other option is a field of the method's peft config class (LoraConfig, IA3Config, ...), passed through as is.
The task type is the head's (`Family.task_type`: SEQ_CLS, or TOKEN_CLS for task=token-classification). Defaults
filled in where the user sets none:

- target_modules: the family's `Family.lora_targets` (BERT query/value, GPT-2 c_attn, T5 q/v, our backbones'
  DEFAULT_LORA_TARGETS), the LoRA paper's choice. On MiniLM-L6 every encoder linear at r=6, the biases and a
  rank-1 adapter on the word embeddings did better (+1.2 points over 3 seeds, 1.97% trainable):
  recipes/configs/classify_lora.yaml. An adapter on an nn.Embedding needs a small `alpha_pattern` entry: peft
  starts its B at N(0, 1), so at alpha = 2r its update swamps the pretrained embeddings.
  IA3 uses peft's own key/value/feed-forward choice where peft knows the model type, else the family's
  targets with no feed-forward modules. Every listed target must match a module.
- modules_to_save: the family's head (`Family.head_modules`), added to any the user lists, so the head always
  trains and is saved (peft's default, classifier/score, misses T5's `classification_head` and BERT's pooler).
- learning rate (unless train.learning_rate is set): DEFAULT_LEARNING_RATES, 2e-3 for LoRA and DoRA.
- lora_alpha (LoRA, DoRA): twice the rank r (peft's default is alpha = 8 whatever r is). MiniLM-L6 on the default
  task, seed 1, lr 2e-3: alpha 16 at r 8 gave 82.24% test accuracy against 81.62% at peft's alpha 8.
- num_virtual_tokens: 20 for prompt methods.

What applies where (a clear error otherwise): LoRA, DoRA and IA3 work for BERT, GPT-2, T5 and our backbones
(IA3 adapts only Linear layers: on hft-textcnn/hft-rnn set target_modules to Linear ones). Prompt tuning needs a
model that takes `inputs_embeds` and pools without input ids: encoders such as BERT; T5's classifier refuses
inputs_embeds, and decoder-only classifiers cannot find the last real token without input ids. Prefix tuning needs
a forward that takes `past_key_values`; transformers 5 models take `cache` instead, so peft 0.21 cannot prefix-tune
any of them (the error says so).

Output: the run's folder holds the adapter only (adapter_config.json, adapter_model.safetensors with the head,
the tokenizer), which `peft.AutoPeftModelForSequenceClassification.from_pretrained(DIR, id2label=..., label2id=...)`
loads: peft rebuilds the base from `base_model_name_or_path`, which names the Hub id for an asset that is a copy of
a Hub repository (minilm-l6: sentence-transformers/all-MiniLM-L6-v2; linked into the Hugging Face cache so it loads
offline here too, hf_transfer.hub_cache), else the absolute path of the local folder (GGUF assets are conversions,
not the repository's weights). The label names are not part of an adapter, so pass them; `hf-transfer predict`
reads them from metrics.json. `transformers.pipeline("text-classification", model=DIR)` loads the adapter on the
base's own config: labels LABEL_0/LABEL_1 for two classes, a size error for more. A config.json with the labels
cannot help: transformers 5.24 then takes the folder for a whole model and looks for its base weights there.
With `merge=true` (LoRA-like methods and IA3; not prompt methods) the folder also holds `merged/`: the adapter
folded into the base weights, a whole model with the labels and tokenizer that
`transformers.pipeline("text-classification", model=DIR/merged)` loads. Evaluation uses the unmerged adapter.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peft import PeftConfig, PromptLearningConfig, TaskType, get_peft_model
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, ModulesToSaveWrapper
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..config import from_dict
from ..errors import UserError, first_line
from ..hub_cache import asset_hub_id, register_asset
from ..log import logger
from .base import Strategy, StrategySetup, register_strategy
from .layers import head_modules

MERGED_DIR = "merged"
# peft methods that cannot train a sequence classifier: causal-LM only, or they need per-example task ids.
NOT_FOR_CLASSIFICATION = {"adaption_prompt": "works on Llama causal LMs only", "cpt": "works on causal LMs only",
                          "multitask_prompt_tuning": "needs task ids", "poly": "needs task ids",
                          "xlora": "mixes several trained LoRA adapters"}
# Set by the strategy, not by options.
RESERVED_FIELDS = {"task_type", "peft_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping",
                   "peft_version", "use_dora"}
# LoRA: a quick check on MiniLM-L6 / Rotten Tomatoes (2000 examples, 1 epoch: 63 steps; benchmarks/
# bench_strategies.py) gave 57.8% test accuracy at 5e-4 and 1e-3 (the head had barely moved) and 75.2% at 2e-3,
# against 77.7% for full fine-tuning at 1e-4. DoRA follows LoRA; the others are peft's usual ranges, unmeasured.
DEFAULT_LEARNING_RATES = {"lora": 2e-3, "dora": 2e-3, "ia3": 3e-3, "prompt_tuning": 3e-2, "p_tuning": 3e-3,
                          "prefix_tuning": 1e-2}
DEFAULT_VIRTUAL_TOKENS = 20
PREFIX_METHODS = ("prefix_tuning", "cartridge")  # virtual keys and values in each attention layer
ADAPTABLE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, Conv1D)


@dataclass
class AdapterOptions:
    """strategy_options of strategy=adapter: the peft `method`, `merge`, and `peft`, every other option (the method's
    peft config fields) passed through."""

    method: str = "lora"
    merge: bool = False  # also save the adapter merged into the base weights, in merged/
    peft: dict[str, Any] = field(default_factory=dict)  # the peft config arguments: the user's plus filled defaults


def _method_config_classes() -> dict[str, type[PeftConfig]]:
    methods = {peft_type.value.lower(): config_class for peft_type, config_class in PEFT_TYPE_TO_CONFIG_MAPPING.items()}
    methods["dora"] = methods["lora"]
    return methods


@register_strategy
class AdapterTuning(Strategy):
    """strategy=adapter: a peft adapter (see the module docstring for the methods and defaults) trains on the frozen
    model, the head trains in full (modules_to_save); the folder holds the adapter, and with merge the merged model."""

    name = "adapter"
    description = "a peft adapter trains on the frozen pretrained model, with the classification head"
    transferred = "parameters"

    def __init__(self, options=None):
        """Parse `options` (strategy_options): method and merge are ours, the rest must be fields of the method's peft
        config class. Raises UserError for an unknown method (naming the closest), a method that cannot train a
        classifier, an unknown option, or merge with a prompt-learning method."""
        peft_options = dict(options or {})
        own = {key: peft_options.pop(key) for key in ("method", "merge") if key in peft_options}
        self.options = from_dict(AdapterOptions, own, prefix="strategy_options.")
        self.options.method = method = self.options.method.lower().replace("-", "_")
        methods = _method_config_classes()
        if method not in methods:
            close = difflib.get_close_matches(method, methods, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"unknown adapter method strategy_options.method={method!r}: {hint}peft knows "
                            f"{', '.join(sorted(methods))}")
        if method in NOT_FOR_CLASSIFICATION:
            raise UserError(f"adapter method {method!r} cannot train a sequence classifier ({NOT_FOR_CLASSIFICATION[method]}): "
                            "use lora, dora, ia3 or prompt_tuning")
        self.config_class = methods[method]
        known = {f.name for f in dataclasses.fields(self.config_class)} - RESERVED_FIELDS
        for key in peft_options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise UserError(f"unknown option strategy_options.{key} for adapter method {method!r}: {hint}options "
                                f"are method, merge and the fields of peft.{self.config_class.__name__}")
        self.prompt_learning = issubclass(self.config_class, PromptLearningConfig)
        if self.options.merge and self.prompt_learning:
            raise UserError(f"strategy_options.merge=true does not apply to {method}: its virtual tokens cannot be "
                            "folded into the weights; drop merge or use method=lora")
        self.options.peft = peft_options
        self.hub_base: tuple[str | None, Path | None] = (None, None)  # (Hub id, asset folder) of the base: setup
        self.default_learning_rate = DEFAULT_LEARNING_RATES.get(method, 5e-4)

    def setup(self, model, family, train_config) -> StrategySetup:
        """Wrap `model` in the peft model the options describe, defaults filled (module docstring);
        StrategySetup.options records the applied peft arguments. Raises UserError for a model built from its config
        (peft cannot reload random weights), targets that match no module, or options peft refuses."""
        model_type = model.config.model_type
        if not model.name_or_path:
            raise UserError(f"strategy=adapter needs pretrained weights that peft can load again under the adapter, but "
                            f"this {model_type} model was built from its config (random weights): pretrain it "
                            "(recipes/pretrain.py) and pass its folder as model=, or use strategy=full")
        fields = {f.name for f in dataclasses.fields(self.config_class)}
        arguments = dict(self.options.peft)
        if self.options.method == "dora":
            arguments["use_dora"] = True
        if "target_modules" in fields and arguments.get("target_modules") is None:
            if self.options.method == "ia3" and model_type in TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING:
                pass  # peft's own choice of keys, values and feed-forward layers
            elif family.lora_targets:
                arguments["target_modules"] = list(family.lora_targets)
                if self.options.method == "ia3":
                    arguments.setdefault("feedforward_modules", [])
        if arguments.get("target_modules") is not None:
            _check_targets(model, arguments["target_modules"])
        if "modules_to_save" in fields:
            heads = head_modules(model, family)
            arguments["modules_to_save"] = sorted(set(heads) | set(arguments.get("modules_to_save") or []))
        if "lora_alpha" in fields:
            arguments.setdefault("lora_alpha", 2 * arguments.get("r", self.config_class.r))
        if self.prompt_learning:
            arguments.setdefault("num_virtual_tokens", DEFAULT_VIRTUAL_TOKENS)
            _check_prompt_learning(self.options.method, model, family)

        try:
            # a copy: PeftModelFor...Classification appends classifier/score to modules_to_save in place
            peft_config = self.config_class(task_type=TaskType(family.task_type), **copy.deepcopy(arguments))
            peft_model = get_peft_model(model, peft_config)
        except (TypeError, ValueError, NotImplementedError, KeyError) as err:
            raise UserError(f"adapter method {self.options.method!r} cannot apply to {model_type} with these options: "
                            f"{first_line(err)}; check strategy_options") from None
        if Path(model.name_or_path).is_dir():
            # AutoPeftModel rebuilds the base from this name: the Hub id an asset is a copy of (registered in the
            # Hugging Face cache by `save`, so it also loads offline here), else the folder's absolute path.
            self.hub_base = (asset_hub_id(model.name_or_path), Path(model.name_or_path))
            peft_model.peft_config["default"].base_model_name_or_path = (self.hub_base[0] or
                                                                         str(Path(model.name_or_path).resolve()))
        applied = {"method": self.options.method, "merge": self.options.merge,
                   "peft": {key: value for key, value in arguments.items() if key != "use_dora"}}
        return StrategySetup(peft_model, family, options=applied)

    def count_parameters(self, model) -> dict:
        """{trainable, total, trainable_fraction}, counting the head once: peft's frozen copy of the original head
        (ModulesToSaveWrapper.original_module) is not part of the saved classifier."""
        copies = {id(p) for module in model.modules() if isinstance(module, ModulesToSaveWrapper)
                  for p in module.original_module.parameters()}
        parameters = [p for p in model.parameters() if id(p) not in copies]
        total = sum(p.numel() for p in parameters)
        trainable = sum(p.numel() for p in parameters if p.requires_grad)
        return {"trainable": trainable, "total": total, "trainable_fraction": trainable / total if total else 0.0}

    def save(self, setup, tokenizer, output_dir: Path) -> None:
        """Save the adapter (adapter_config.json, weights, the head) and the tokenizer into `output_dir`; with merge
        also the merged model in output_dir/merged. A base loaded from an asset is first linked into the Hugging Face
        cache under its Hub id, so the adapter loads offline here (a warning, not an error, when linking fails)."""
        hub_id, folder = self.hub_base
        if hub_id:  # first, so that peft's save finds the base's config under its Hub id
            try:
                if register_asset(hub_id, folder):
                    logger.info(f"the adapter's base {hub_id} loads offline here from the asset at {folder} "
                                "(linked into the Hugging Face cache)")
            except OSError as err:
                logger.warning(f"could not link {folder} into the Hugging Face cache as {hub_id} ({err}): offline, "
                               "stock clients here need that model in the cache to load the adapter")
        setup.model.save_pretrained(output_dir)  # adapter_config.json + adapter weights, the head included
        tokenizer.save_pretrained(output_dir)
        if self.options.merge:
            merged = setup.model.merge_and_unload()  # in place: the run is over, the unmerged model is not used again
            merged.save_pretrained(Path(output_dir) / MERGED_DIR, safe_serialization=True)
            tokenizer.save_pretrained(Path(output_dir) / MERGED_DIR)


def _check_targets(model, targets) -> None:
    """peft's matching (a list: name or dotted suffix; a string: full regex match), but every entry must match."""
    names = [name for name, _ in model.named_modules() if name]
    if isinstance(targets, str):
        unmatched = [] if targets == "all-linear" or any(re.fullmatch(targets, name) for name in names) else [targets]
    else:
        unmatched = [t for t in targets if not any(name == t or name.endswith(f".{t}") for name in names)]
    if unmatched:
        layers = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, ADAPTABLE_LAYERS)})
        raise UserError(f"strategy_options.target_modules entry {unmatched[0]!r} matches no module of "
                        f"{model.config.model_type}: its adaptable layers are named {', '.join(layers)}")


def _check_prompt_learning(method: str, model, family) -> None:
    model_type = model.config.model_type
    if method in PREFIX_METHODS:
        takes = {*inspect.signature(model.forward).parameters, *inspect.signature(model.base_model.forward).parameters}
        if "past_key_values" not in takes:
            raise UserError(f"adapter method {method!r} cannot apply to {model_type}: peft injects the prefix through a "
                            f"past_key_values argument that {type(model).__name__}.forward does not take; use method=lora")
        return
    if "inputs_embeds" not in inspect.signature(model.forward).parameters or family.encoder_decoder:
        raise UserError(f"adapter method {method!r} cannot apply to {model_type}: it feeds the prompt as inputs_embeds, "
                        f"which {type(model).__name__} does not classify; use method=lora")
    if family.decoder_only:
        raise UserError(f"adapter method {method!r} cannot apply to {model_type}: a decoder-only classifier finds the "
                        "last real token from input_ids, which prompt methods replace by inputs_embeds; use method=lora")
