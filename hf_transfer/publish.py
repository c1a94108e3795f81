"""`hf-transfer publish`: push a run's output folder to the Hub, or write it as a local Hub cache.

    hf-transfer publish outputs/minilm-l6-rotten-tomatoes-full --repo-id my-org/minilm-rotten-tomatoes
    hf-transfer publish OUTPUT_DIR --repo-id my-org/NAME --to ./hub    # then HF_HUB_CACHE=./hub HF_HUB_OFFLINE=1

What is published is an explicit allow-list of regular files at the top of the folder, never a directory walk:
the card (re-rendered for the repo id, so its usage snippet loads `ORG/NAME`), metrics.json, plots, the config,
tokenizer files, weights as safetensors only, an adapter as an adapter, and the modeling code that config.json's
auto_map names for our own backbones. A study folder (`hf-transfer compare`) publishes its card, tables, config
and plots (study.files.PUBLISHED_FILES), not its runs: publish a run folder (STUDY/runs/RUN) on its own.
Pickles (*.bin, *.pt, ...), the Trainer's leftovers, predictions (they hold the evaluation texts), links (symbolic
or hard) and anything resolving outside the folder are left behind. The token comes from HF_TOKEN or the stored
login and is never written anywhere: files that contain it are refused. Files written to a local hub folder get the
mode any new file gets (0644 under the usual umask 022).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import validate_repo_id

from .cards import has_card, read_json, remote_code_files, render_card
from .errors import UserError, first_line
from .results import METRICS_FILE, RunResult

CARD_FILE = "README.md"
CONFIG_FILES = ("config.json", "generation_config.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model", "chat_template.jinja", "chat_template.json")
WEIGHT_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
SYMLINK = "symlink (never published)"
HARD_LINK = "hard link: the file has other names, maybe outside the folder (never published)"
# HfHubHTTPError derives from the HTTP client's base error (httpx in huggingface_hub 1.x), which is what
# connection failures raise.
HTTP_ERRORS = (HfHubHTTPError, HfHubHTTPError.__bases__[0])
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


@dataclass
class PublishedFile:
    """One file of a PublishPlan: its path in the repo, and either the output-folder file or bytes we wrote."""

    path_in_repo: str
    source: Path | None = None  # copied from the output folder as is
    content: bytes | None = None  # written by us: the re-rendered card, a rewritten adapter config

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes in pieces of at most `size` bytes (1 MiB). The source is opened without following links and
        must still be a regular file with one link; raises UserError when it changed after planning."""
        if self.content is not None:
            yield self.content
            return
        # Checked again on the open file: a file swapped for a link after planning is not followed.
        try:
            handle = open(os.open(self.source, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except OSError as err:
            raise UserError(f"{self.source} changed while publishing ({err.strerror}); publish again") from None
        with handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                raise UserError(f"{self.source} became a link while publishing; publish again")
            while chunk := handle.read(size):
                yield chunk

    def contains(self, needle: bytes) -> bool:
        """Whether `needle` occurs in the file, matches across chunk boundaries included."""
        tail = b""
        for chunk in self.chunks():
            window = tail + chunk
            if needle in window:
                return True
            tail = window[-(len(needle) - 1):] if len(needle) > 1 else b""
        return False


@dataclass
class PublishPlan:
    """What goes into the repo, and what was left behind with the reason."""

    repo_id: str
    layout: str  # "model" | "adapter" | "card-only" | "study"
    files: list[PublishedFile]
    skipped: dict[str, str] = field(default_factory=dict)
    result: RunResult | None = None

    @property
    def names(self) -> list[str]:
        """The files' paths in the repo, in upload order."""
        return [f.path_in_repo for f in self.files]


def check_repo_id(repo_id: str | None) -> str:
    """`repo_id` when it is ORG/NAME and valid for the Hub (huggingface_hub.validate_repo_id); raises UserError naming
    the rule it breaks otherwise."""
    if not repo_id or repo_id.count("/") != 1:
        raise UserError(f"repo id {repo_id!r} is not of the form ORG/NAME: name the user or organisation and the "
                        "model, e.g. --repo-id my-org/minilm-rotten-tomatoes")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(f"repo id {repo_id!r} is invalid: use letters, digits, '-', '_' and '.' (no '--' or '..', "
                        "at most 96 characters, not starting or ending with '-' or '.')") from None
    return repo_id


def hub_token() -> str:
    """HF_TOKEN or the stored login (`hf auth login`)."""
    token = get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                        "(or write a local hub folder with --to DIR)")
    return token


def check_hub_target(repo_id: str | None) -> str:
    """Fail before any work when a push could not happen: bad repo id, no token, offline mode. Returns the token."""
    check_repo_id(repo_id)
    if constants.HF_HUB_OFFLINE:
        raise UserError("HF_HUB_OFFLINE=1 is set, so nothing can be pushed: unset it, "
                        "or write a local hub folder with --to DIR")
    return hub_token()


def check_revision(revision: str | None) -> str:
    """A branch name that stays a branch name, also as a path under refs/ in a local hub folder."""
    revision = revision or constants.DEFAULT_REVISION
    if not REVISION.fullmatch(revision) or ".." in revision or revision.endswith(".lock"):
        raise UserError(f"revision {revision!r} is not a usable branch name: use letters, digits, '.', '_', '-' "
                        "and '/' between parts, e.g. --revision v1")
    return revision


def plan_publish(output_dir: Path, repo_id: str, force: bool = False) -> PublishPlan:
    """Check the folder and build the explicit list of files to publish, with the card rendered for `repo_id`."""
    check_repo_id(repo_id)
    given = Path(output_dir)
    if not given.is_dir():
        raise UserError(f"output folder {given} not found: pass the folder a classify run wrote")
    root = given.resolve()
    if _is_study(root):
        return _plan_study(root, repo_id, force)
    result = _load_result(root, force)
    _check_card(root, force)
    layout = _layout(root, result)
    files, skipped = _allowed_files(root, layout)
    _check_weights(root, layout, files, skipped)

    published = {name: PublishedFile(name, path) for name, path in files.items()}
    if layout == "adapter":
        published["adapter_config.json"] = _adapter_config_for_hub(root, result, force)
    if result is not None and (has_card(result.kind) or not force):  # --force: e.g. a pretraining run, no card
        card = render_card(result, root, repo_id)
        published[CARD_FILE] = PublishedFile(CARD_FILE, content=str(card).encode())
    return PublishPlan(repo_id, layout, sorted(published.values(), key=lambda f: f.path_in_repo), skipped, result)


def _is_study(root: Path) -> bool:
    """A study folder (hf-transfer compare): its study.yaml, and no run record of its own."""
    from .study.files import STUDY_CONFIG

    return (root / STUDY_CONFIG).is_file() and not (root / METRICS_FILE).is_file()


def _plan_study(root: Path, repo_id: str, force: bool) -> PublishPlan:
    """A finished study's card, tables and plots, as they are (the card has no usage snippet to re-render)."""
    from .study.files import RESULTS_FILE

    if not (root / RESULTS_FILE).is_file() and not force:
        raise UserError(f"study {root} has no {RESULTS_FILE}: it has not finished; run hf-transfer compare "
                        f"--config {root / 'study.yaml'} output_dir={root} to finish it, or pass --force")
    path = root / CARD_FILE
    try:
        problem = None if "transfer-study" in (ModelCard.load(path).data.tags or []) else "it is no study card"
    except Exception as err:  # a missing file, a broken header: as _check_card
        problem = f"it does not load ({first_line(err, 120)})"
    if problem and not force:
        raise UserError(f"the study card {path} is not valid: {problem}; run hf-transfer compare on the study "
                        "again (it rewrites the card), or pass --force")
    files, skipped = _allowed_files(root, "study")
    return PublishPlan(repo_id, "study", [PublishedFile(name, source) for name, source in files.items()], skipped)


def _load_result(root: Path, force: bool) -> RunResult | None:
    if not (root / METRICS_FILE).is_file():
        if force:
            return None
        raise UserError(f"{root} has no {METRICS_FILE} (eval results): publish the folder of a finished run, "
                        "or pass --force")
    try:
        return RunResult.load(root)
    except (ValueError, TypeError, KeyError) as err:
        raise UserError(f"{root / METRICS_FILE} is not a run record ({first_line(err, 120)}): "
                        "publish the folder of a finished run, or pass --force") from None


def _check_card(root: Path, force: bool) -> None:
    path = root / CARD_FILE
    if not path.is_file():
        problem = "it is missing"
    else:
        try:
            card = ModelCard.load(path)
            problem = None if card.data.eval_results else "it has no model-index (eval results)"
        except Exception as err:  # ModelCard.load raises ValueError, yaml errors and more for a broken header
            problem = f"it does not parse ({first_line(err, 120)})"
    if problem and not force:
        raise UserError(f"the model card {path} is not valid: {problem}; re-run the classify run, or pass --force")


def _layout(root: Path, result: RunResult | None) -> str:
    """"adapter" (peft adapter files), "model" (config.json and weights) or "card-only" (an evaluation)."""
    if (root / "adapter_config.json").is_file():
        return "adapter"
    if (root / "config.json").is_file():
        return "model"
    if result is not None and result.kind == "classification":
        raise UserError(f"{root} has neither config.json nor adapter_config.json: a classification run must hold "
                        "its model; publish the folder the run wrote")
    return "card-only"


def _allowed_files(root: Path, layout: str) -> tuple[dict[str, Path], dict[str, str]]:
    """Regular files at the top of `root` that the layout ("model", "adapter", "card-only", "study") publishes, by
    name; the rest with why they stay."""
    allowed = {CARD_FILE, METRICS_FILE}
    if layout == "study":
        from .study.files import PUBLISHED_FILES

        allowed = set(PUBLISHED_FILES)
    elif layout == "adapter":
        allowed |= {*ADAPTER_FILES, *TOKENIZER_FILES}
    elif layout == "model":
        allowed |= {*CONFIG_FILES, WEIGHT_INDEX, *TOKENIZER_FILES, *remote_code_files(root)}
    files, skipped = {}, {}
    for entry in sorted(root.iterdir()):
        name = entry.name
        if entry.is_symlink():
            skipped[name] = SYMLINK
        elif entry.is_dir():
            skipped[name + "/"] = "folder (only top-level files are published)"
        elif not entry.is_file():
            skipped[name] = "not a regular file"
        elif entry.stat().st_nlink > 1:
            # Refused, not copied: a hard link is the other file itself, and where its other names live (maybe
            # ~/.ssh, maybe a dataset) cannot be told from here, so copying its content publishes exactly that.
            skipped[name] = HARD_LINK
        elif entry.resolve().parent != root:
            skipped[name] = "resolves outside the output folder"
        elif name.endswith(PICKLE_SUFFIXES):
            skipped[name] = "pickle (only safetensors are published)"
        elif name in allowed or name.endswith(".png") or (layout == "model" and name.endswith(".safetensors")):
            files[name] = entry
        elif layout == "adapter" and (name in CONFIG_FILES or name.endswith(".safetensors")):
            skipped[name] = "whole-model file next to an adapter (the adapter is published)"
        else:
            skipped[name] = f"not part of a published {'study' if layout == 'study' else 'model'}"
    return files, skipped


def _check_weights(root: Path, layout: str, files: dict[str, Path], skipped: dict[str, str]) -> None:
    """The layout's weights are there as regular safetensors files, and a model's code next to them."""
    for name in ("model.safetensors", "adapter_model.safetensors", WEIGHT_INDEX):
        if skipped.get(name) in (SYMLINK, HARD_LINK):
            raise UserError(f"{root / name} is a {skipped[name].split(' (')[0]}, and links are never published: "
                            "replace it with a copy of the file (cp, not ln)")
    pickles = ", ".join(p.name for p in sorted(root.iterdir()) if p.is_file() and p.name.endswith(PICKLE_SUFFIXES))
    found = f"only {pickles}" if pickles else "no weights"
    if layout == "adapter" and "adapter_model.safetensors" not in files:
        raise UserError(f"{root} holds an adapter config but no adapter_model.safetensors ({found}): "
                        "save the adapter with safe_serialization=True")
    if layout != "model":
        return
    if WEIGHT_INDEX in files:
        shards = set((read_json(files[WEIGHT_INDEX]) or {}).get("weight_map", {}).values())
        missing = sorted(shards - set(files))
        if missing or not shards:
            raise UserError(f"{root / WEIGHT_INDEX} names shards that cannot be published "
                            f"({', '.join(missing) or 'none'}): save the model again with save_pretrained")
    elif "model.safetensors" not in files:
        raise UserError(f"{root} has no model.safetensors ({found}): only safetensors are published; "
                        "save the model with safe_serialization=True")
    for module in remote_code_files(root):
        if module not in files:
            raise UserError(f"config.json's auto_map needs {module}, which is not a regular file in {root}: "
                            "save the model with its code (save_pretrained of a model registered for auto classes)")


def _adapter_config_for_hub(root: Path, result: RunResult | None, force: bool) -> PublishedFile:
    """The adapter config with base_model_name_or_path pointing at the base model's Hub id, not a local folder."""
    config = read_json(root / "adapter_config.json")
    if config is None:
        raise UserError(f"{root / 'adapter_config.json'} is not valid JSON: save the adapter again")
    base = config.get("base_model_name_or_path")
    hub_base = result.model.get("base_model") if result else None
    if hub_base:
        config["base_model_name_or_path"] = hub_base
    elif not force and not _is_hub_id(base):
        raise UserError(f"the adapter's base model {base!r} is not a Hub id, so nobody else could load it: "
                        "train from a Hub model or a model asset, or pass --force")
    content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    return PublishedFile("adapter_config.json", content=content)


def _is_hub_id(name: str | None) -> bool:
    if not name or name.startswith((".", "/", "~")) or Path(name).expanduser().exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _check_no_token(plan: PublishPlan, token: str | None) -> None:
    if not token:
        return
    for published in plan.files:
        if published.contains(token.encode()):
            raise UserError(f"{published.path_in_repo} contains your Hugging Face token: "
                            "remove it from the file before publishing")


def default_commit_message(plan: PublishPlan) -> str:
    """The commit message when the user gives none: the run's model, strategy, dataset and layout (the layout alone
    without metrics.json)."""
    if plan.result is None:
        return f"Upload {plan.layout} with hf_transfer"
    r = plan.result
    return f"hf_transfer: {r.model['name']} by {r.strategy['name']} transfer on {r.task['dataset']} ({plan.layout})"


def publish_to_hub(output_dir: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                   commit_message: str | None = None, force: bool = False) -> tuple[str, PublishPlan]:
    """Create the repo (if needed) and commit the planned files in one commit. Returns (commit URL, plan)."""
    revision = check_revision(revision)
    plan = plan_publish(output_dir, repo_id, force)
    token = check_hub_target(repo_id)
    _check_no_token(plan, token)
    api = HfApi(token=token)
    operations = [CommitOperationAdd(f.path_in_repo, f.content if f.content is not None else str(f.source))
                  for f in plan.files]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.create_commit(repo_id, operations, commit_message=commit_message or default_commit_message(plan),
                                   revision=revision)
    except HTTP_ERRORS as err:
        raise UserError(_hub_error(err, repo_id, token)) from None
    except ValueError as err:  # huggingface_hub's own checks, e.g. the Hub rejecting the card's metadata
        raise UserError(f"the Hub refused the upload to {repo_id}: {_first_line(err, token)}") from None
    return commit.commit_url, plan


def _first_line(err: BaseException, token: str) -> str:
    """The error's first line with the token masked (masked before trimming, so no part of it survives)."""
    return first_line(err, limit=10_000).replace(token, "***")[:200]


def _hub_error(err: BaseException, repo_id: str, token: str) -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 401:
        return "the Hub rejected the token (401): set a valid HF_TOKEN or run `hf auth login`"
    if status == 403:
        return f"the token may not write to {repo_id} (403): use a write token with access to {repo_id.split('/')[0]}"
    if status is None:
        return (f"cannot reach the Hub at {constants.ENDPOINT} ({_first_line(err, token)}): "
                "check the network or HF_ENDPOINT")
    return f"the Hub answered {status} for {repo_id}: {_first_line(err, token)}"


def publish_to_folder(output_dir: Path, repo_id: str, hub_dir: Path, *, revision: str | None = None,
                      force: bool = False) -> tuple[Path, PublishPlan]:
    """Write the planned files as a Hub cache entry: HF_HUB_CACHE=hub_dir makes `from_pretrained(repo_id)` resolve
    offline. Blobs are named by sha256, the commit by the sha1 of the file list. Returns (snapshot folder, plan)."""
    revision = check_revision(revision)
    plan = plan_publish(output_dir, repo_id, force)
    _check_no_token(plan, get_token())
    repo_dir = Path(hub_dir) / repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    manifest = []
    for published in plan.files:
        temporary = blobs / f".incoming.{os.getpid()}.{secrets.token_hex(8)}"
        sha256 = hashlib.sha256()
        try:
            # A new file ("x"), not tempfile.mkstemp: mkstemp makes files 0600, which the other users of a shared hub
            # folder cannot read; open() gives 0666 less the umask, like any file.
            with open(temporary, "xb") as out:
                for chunk in published.chunks():
                    sha256.update(chunk)
                    out.write(chunk)
            os.replace(temporary, blobs / sha256.hexdigest())
        finally:
            Path(temporary).unlink(missing_ok=True)
        manifest.append(f"{published.path_in_repo} {sha256.hexdigest()}\n")
    commit = hashlib.sha1("".join(manifest).encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for line in manifest:
        name, digest = line.split()
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..", "..", "blobs", digest))
    ref = repo_dir / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return snapshot, plan
