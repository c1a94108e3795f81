"""Where a classifier's head and layer groups are, for strategies that freeze or schedule parts of it.

The head is the modules named in `Family.head_modules`, by path (`classifier`, `score`, `classification_head`,
BERT's `bert.pooler` + `classifier`). Layer groups, bottom to top, follow ULMFiT: everything below the first
transformer block (embeddings), one group per block, then the head. A block is an element of a ModuleList whose
length is the config's layer count (`num_hidden_layers`, and `num_decoder_layers` for encoder-decoders);
parameters registered between or after blocks (GPT-2's `ln_f`, T5's final layer norms) join the block below them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..errors import UserError


def head_modules(model, family) -> dict[str, nn.Module]:
    """The classification head's modules by path, those of `family.head_modules` that the model has (RoBERTa, in
    BERT's family, has no `bert.pooler`); a UserError when it has none of them."""
    modules = dict(model.named_modules())
    heads = {name: modules[name] for name in family.head_modules if name in modules}
    if not heads:
        raise UserError(
            f"cannot find the classification head of {model.config.model_type} (looked for a module named "
            f"{' or '.join(family.head_modules) or 'nothing'}): register the family's head in hf_transfer.backbones.FAMILIES"
        )
    return heads


def _inside(name: str, modules) -> bool:
    return any(name == module or name.startswith(f"{module}.") for module in modules)


def output_layer(model, family) -> tuple[nn.Module, str, nn.Linear]:
    """(parent, attribute, layer): the head's last Linear, the one that produces the logits."""
    num_labels = model.config.num_labels
    found = None
    for head_name, head in head_modules(model, family).items():
        for name, module in head.named_modules():
            if isinstance(module, nn.Linear) and module.out_features == num_labels:
                parent_name, _, attribute = f"{head_name}.{name}".strip(".").rpartition(".")
                found = (model.get_submodule(parent_name), attribute, module)
    if found is None:
        raise UserError(
            f"the head of {model.config.model_type} does not end in a Linear layer with one output per label "
            f"({num_labels}): this strategy needs one; use strategy=frozen"
        )
    return found


@dataclass
class LayerGroup:
    """A named group of parameters (embeddings, one block, the head) that unfreezes and takes a learning rate as one."""

    name: str
    parameters: list[nn.Parameter] = field(default_factory=list)


def layer_groups(model, family) -> list[LayerGroup]:
    """Bottom-to-top layer groups: embeddings, each block, head. UserError if the model has no blocks."""
    heads = head_modules(model, family)
    stacks = _block_stacks(model, exclude=set(heads))
    if not stacks:
        depth = getattr(_depth_config(model), "num_hidden_layers", None)
        why = f"no ModuleList of its {depth} blocks" if depth else "its config sets no num_hidden_layers"
        raise UserError(f"{model.config.model_type} has no stack of layers to unfreeze one by one ({why}): "
                        "use strategy=full or frozen")
    block_of = {}  # module name prefix -> group name
    for stack_name, stack in stacks:
        for index in range(len(stack)):
            block_of[f"{stack_name}.{index}."] = f"{stack_name}.{index}"

    groups = [LayerGroup("embeddings")]
    by_name = {"embeddings": groups[0]}
    head_group = LayerGroup("head")
    for name, parameter in model.named_parameters():
        if _inside(name, heads):
            head_group.parameters.append(parameter)
            continue
        block = next((group for prefix, group in block_of.items() if name.startswith(prefix)), None)
        if block is not None and block not in by_name:
            by_name[block] = LayerGroup(block)
            groups.append(by_name[block])
        # outside any block: belongs to the group below it (embeddings before the first block)
        (by_name[block] if block is not None else groups[-1]).parameters.append(parameter)
    return groups + [head_group]


def _depth_config(model):
    """The config that says how many blocks the model stacks: its base model's (an hft-pooled classifier's is its
    encoder's; for the others the model's own)."""
    return getattr(model, "base_model", model).config.get_text_config()


def _block_stacks(model, exclude: set[str]) -> list[tuple[str, nn.ModuleList]]:
    config = _depth_config(model)
    depths = {getattr(config, key, None) for key in ("num_hidden_layers", "num_decoder_layers")} - {None, 0}
    stacks = []
    for name, module in model.named_modules():
        if _inside(name, exclude) or _inside(name, [outer for outer, _ in stacks]):
            continue  # the head, or a ModuleList inside a block (T5's T5Block.layer)
        if isinstance(module, nn.ModuleList) and len(module) in depths:
            stacks.append((name, module))
    return stacks
