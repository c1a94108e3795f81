"""hf-transfer publish: the local hub round trip, the Hub protocol against a local endpoint, and refusals.

Output folders come from test_cards.build_output (tiny random models, hand-made RunResults). The Hub is a small
threaded http.server on 127.0.0.1 that answers what huggingface_hub sends (create repo, branch, validate-yaml,
preupload, LFS batch + upload, commit) and records every request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_transfer.cards import render_card
from hf_transfer.cli import main
from hf_transfer.config import ClassifyConfig
from hf_transfer.classify import run_classify
from hf_transfer.errors import UserError
from hf_transfer.publish import plan_publish, publish_to_folder
from test_cards import (HUB_BASE, TINY_PNG, outputs, python_block, run_snippets,  # noqa: F401  (a fixture)
                        zero_shot_result)

TOKEN = "hf_test_SECRET123"
REPO = "test-org/tiny-classifier"
# What each kind publishes: exactly these files (BertTokenizer saves tokenizer.json + tokenizer_config.json).
COMMON = {"README.md", "metrics.json", "loss_curve.png", "tokenizer.json", "tokenizer_config.json"}
PUBLISHED = {
    "full": COMMON | {"config.json", "model.safetensors"},
    "adapter": COMMON | {"adapter_config.json", "adapter_model.safetensors"},
    "remote-code": COMMON | {"config.json", "model.safetensors", "configuration_textcnn.py", "modeling_textcnn.py"},
}
def run_cli(*args, env=None, timeout=180) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "hf-transfer"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy())


def recorded_predictions(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def snapshot_of(hub: Path, repo_id: str, revision: str = "main") -> Path:
    repo_dir = hub / ("models--" + repo_id.replace("/", "--"))
    return repo_dir / "snapshots" / (repo_dir / "refs" / revision).read_text()


@pytest.fixture(scope="module")
def hub_with_base(tiny_bert, tmp_path_factory) -> Path:
    """A local hub holding the tiny base model under HUB_BASE, for adapters to load; it is no run, so --force."""
    hub = tmp_path_factory.mktemp("hub")
    publish_to_folder(tiny_bert, HUB_BASE, hub, force=True)
    return hub


# ---------------------------------------------------------------------------------------------------------------
# The local hub round trip


def test_local_hub_round_trip_gives_the_recorded_predictions(outputs, hub_with_base, tmp_path):
    snippets, texts, recorded = {}, {}, {}
    for kind in ("full", "adapter", "remote-code"):
        folder = outputs(kind)
        repo_id = f"test-org/tiny-{kind}"
        snapshot, plan = publish_to_folder(folder, repo_id, hub_with_base)

        assert plan.layout == ("adapter" if kind == "adapter" else "model")
        assert {p.name for p in snapshot.iterdir()} == PUBLISHED[kind]
        for entry in snapshot.iterdir():  # the Hub cache layout: snapshot links into blobs named by content hash
            assert entry.is_symlink() and entry.resolve().parent.name == "blobs"
            assert hashlib.sha256(entry.read_bytes()).hexdigest() == entry.resolve().name
        snippets[kind] = python_block(ModelCard.load(snapshot / "README.md").text)
        assert repo_id in snippets[kind] and str(folder) not in snippets[kind]
        if kind == "adapter":
            assert json.loads((snapshot / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_BASE
            assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] != HUB_BASE
        else:  # a whole model loads with the plain pipeline, our own backbones with their code
            remote = ", trust_remote_code=True" if kind == "remote-code" else ""
            assert f'pipeline("text-classification", model="{repo_id}"{remote})' in snippets[kind]
        recorded[kind] = [r for r in recorded_predictions(folder) if r["split"] == "test"]
        texts[kind] = [r["text"] for r in recorded[kind]]

    # A fresh process that never imported hf_transfer, offline, with only the local hub to load from.
    results = run_snippets(snippets, tmp_path, texts, HF_HUB_CACHE=str(hub_with_base))
    for kind, result in results.items():
        assert "'label': " in result["printed"]  # the snippet's own print ran
        for row, got in zip(recorded[kind], result["scores"], strict=True):
            assert max(got, key=got.get) == row["prediction"]
            assert got == pytest.approx(row["scores"], abs=1e-5), kind


def test_publish_leaves_pickles_links_and_trainer_leftovers_behind(outputs, tmp_path):
    folder = shutil.copytree(outputs("full"), tmp_path / "run")
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"not yours")
    (folder / "linked.safetensors").symlink_to(outside)
    (folder / "tokenizer.model").symlink_to(outside)  # an allowed name, still a link
    for leftover in ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "rng_state.pth"):
        (folder / leftover).write_bytes(b"\x80\x04pickle")
    (folder / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-15").mkdir()
    (folder / "checkpoint-15" / "model.safetensors").write_bytes(b"old")

    snapshot, plan = publish_to_folder(folder, REPO, tmp_path / "hub")

    assert {p.name for p in snapshot.iterdir()} == PUBLISHED["full"]
    assert plan.skipped == {
        "checkpoint-15/": "folder (only top-level files are published)",
        "linked.safetensors": "symlink (never published)",
        "optimizer.pt": "pickle (only safetensors are published)",
        "predictions.jsonl": "not part of a published model",
        "pytorch_model.bin": "pickle (only safetensors are published)",
        "rng_state.pth": "pickle (only safetensors are published)",
        "tokenizer.model": "symlink (never published)",
        "trainer_state.json": "not part of a published model",
        "training_args.bin": "pickle (only safetensors are published)",
    }
    blobs = list((snapshot.parent.parent / "blobs").iterdir())
    assert all(b.read_bytes() not in (b"not yours", b"old", b"\x80\x04pickle") for b in blobs)
    # Publishing again is idempotent: same content, same commit.
    again, _ = publish_to_folder(folder, REPO, tmp_path / "hub")
    assert again == snapshot


def test_hard_links_are_never_published(outputs, tmp_path):
    folder = shutil.copytree(outputs("full"), tmp_path / "run")
    secret = tmp_path / "id_ed25519"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    os.link(secret, folder / "attention.png")  # a plot's name, another file's content
    os.link(folder / "loss_curve.png", tmp_path / "loss_curve-backup.png")  # a real plot, but with a second name

    snapshot, plan = publish_to_folder(folder, REPO, tmp_path / "hub")

    assert {p.name for p in snapshot.iterdir()} == PUBLISHED["full"] - {"loss_curve.png"}
    for name in ("attention.png", "loss_curve.png"):
        assert plan.skipped[name].startswith("hard link: the file has other names"), plan.skipped
    blobs = list((snapshot.parent.parent / "blobs").iterdir())
    assert all(b"PRIVATE KEY" not in b.read_bytes() for b in blobs)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_local_hub_files_get_the_mode_of_any_new_file(outputs, tmp_path, umask):
    folder = shutil.copytree(outputs("full"), tmp_path / "run")
    (folder / "model.safetensors").chmod(0o600)  # as safetensors 0.8 saves it
    previous = os.umask(umask)
    try:
        snapshot, _ = publish_to_folder(folder, REPO, tmp_path / "hub")
    finally:
        os.umask(previous)
    repo_dir = snapshot.parent.parent
    files = [*(repo_dir / "blobs").iterdir(), repo_dir / "refs" / "main"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}  # 0644 under the usual umask
    folders = [repo_dir, repo_dir / "blobs", snapshot]
    assert {stat.S_IMODE(f.stat().st_mode) for f in folders} == {0o777 & ~umask}


def test_zero_shot_evaluation_publishes_its_card_and_record_only(tmp_path):
    folder = tmp_path / "zero-shot-run"
    folder.mkdir()
    result = zero_shot_result()
    result.save(folder)
    (folder / "confusion_matrix.png").write_bytes(TINY_PNG)
    (folder / "predictions.jsonl").write_text("{}\n")
    render_card(result, folder, str(folder)).save(folder / "README.md")
    snapshot, plan = publish_to_folder(folder, "test-org/tiny-nli-zero-shot", tmp_path / "hub")
    assert plan.layout == "card-only"
    assert {p.name for p in snapshot.iterdir()} == {"README.md", "metrics.json", "confusion_matrix.png"}
    assert ModelCard.load(snapshot / "README.md").data.pipeline_tag == "zero-shot-classification"


def test_force_publishes_a_folder_without_run_record(outputs, tmp_path):
    folder = shutil.copytree(outputs("full"), tmp_path / "run")
    (folder / "metrics.json").unlink()
    snapshot, plan = publish_to_folder(folder, REPO, tmp_path / "hub", revision="v1", force=True)
    assert plan.result is None and "metrics.json" not in plan.names
    assert (snapshot / "README.md").read_bytes() == (folder / "README.md").read_bytes()  # kept: nothing to re-render
    assert snapshot == snapshot_of(tmp_path / "hub", REPO, "v1")


# ---------------------------------------------------------------------------------------------------------------
# The Hub protocol against a local endpoint


class FakeHub(ThreadingHTTPServer):
    """Answers the requests huggingface_hub makes to publish, and records them."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.requests: list[dict] = []
        self.lfs: dict[str, bytes] = {}
        self.commits: list[dict] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHubHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def _reply(self, status: int, payload: dict | None = None) -> None:
        body = json.dumps(payload or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        hub: FakeHub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        hub.requests.append({"method": self.command, "path": path, "body": body,
                             "headers": {key.lower(): value for key, value in self.headers.items()}})
        repo = r"(?P<repo>[^/]+/[^/]+)"
        if path == "/api/repos/create":
            payload = json.loads(body)
            return self._reply(200, {"url": f"{hub.endpoint}/{payload['organization']}/{payload['name']}"})
        if path == "/api/validate-yaml":
            return self._reply(200, {"errors": [], "warnings": []})
        if re.fullmatch(rf"/api/models/{repo}/branch/[^/]+", path):
            return self._reply(200)
        if re.fullmatch(rf"/api/models/{repo}/preupload/[^/]+", path):
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [
                {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".safetensors") else "regular",
                 "shouldIgnore": False} for f in files]})
        if re.fullmatch(rf"/{repo}\.git/info/lfs/objects/batch", path):
            objects = json.loads(body)["objects"]
            return self._reply(200, {"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"], "authenticated": True,
                 "actions": {"upload": {"href": f"{hub.endpoint}/lfs-storage/{o['oid']}"}}} for o in objects]})
        if self.command == "PUT" and path.startswith("/lfs-storage/"):
            hub.lfs[path.rsplit("/", 1)[1]] = body
            return self._reply(200)
        if match := re.fullmatch(rf"/api/models/{repo}/commit/(?P<revision>[^/]+)", path):
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            hub.commits.append({"repo": match["repo"], "revision": match["revision"], "lines": lines})
            return self._reply(200, {"commitUrl": f"{hub.endpoint}/{match['repo']}/commit/{'a' * 40}",
                                     "commitOid": "a" * 40})
        return self._reply(404, {"error": f"fake hub: no route for {self.command} {path}"})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    thread = threading.Thread(target=hub.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield hub
    hub.shutdown()
    hub.server_close()
    thread.join(timeout=5)


def hub_env(hub: FakeHub, tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    return {**env, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def test_hub_push_commits_exactly_the_allowed_files_and_never_the_token(outputs, fake_hub, tmp_path):
    folder = shutil.copytree(outputs("full"), tmp_path / "run")
    (folder / "training_args.bin").write_bytes(b"\x80\x04pickle")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    done = run_cli("publish", folder, "--repo-id", REPO, "--private", "--revision", "dev",
                   "--commit-message", "first tiny classifier", env=hub_env(fake_hub, tmp_path, HF_TOKEN=TOKEN))

    assert done.returncode == 0, done.stderr[-3000:]
    routes = [(r["method"], r["path"]) for r in fake_hub.requests]
    assert ("POST", "/api/repos/create") in routes and ("POST", f"/api/models/{REPO}/branch/dev") in routes
    assert not [r for r in fake_hub.requests if r["path"].startswith("/api/") and r["method"] != "POST"]
    create = json.loads(next(r["body"] for r in fake_hub.requests if r["path"] == "/api/repos/create"))
    assert create == {"name": "tiny-classifier", "organization": "test-org", "visibility": "private"}

    (commit,) = fake_hub.commits
    assert commit["repo"] == REPO and commit["revision"] == "dev"
    assert commit["lines"][0] == {"key": "header", "value": {"summary": "first tiny classifier", "description": ""}}
    committed = {}
    for line in commit["lines"][1:]:
        value = line["value"]
        if line["key"] == "file":
            committed[value["path"]] = base64.b64decode(value["content"])
        else:
            assert line["key"] == "lfsFile"
            committed[value["path"]] = fake_hub.lfs[value["oid"]]
            assert hashlib.sha256(committed[value["path"]]).hexdigest() == value["oid"]
    assert set(committed) == PUBLISHED["full"]
    for name in PUBLISHED["full"] - {"README.md"}:
        assert committed[name] == (folder / name).read_bytes()
    card = committed["README.md"].decode()
    assert f'model="{REPO}"' in python_block(card) and str(folder) not in card
    assert ModelCard(card).data.eval_results

    secret = TOKEN.encode()
    api_calls = [r for r in fake_hub.requests if not r["path"].startswith("/lfs-storage/")]
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in api_calls), api_calls
    for request in fake_hub.requests:
        assert secret not in request["body"]
        assert all(TOKEN not in value for key, value in request["headers"].items() if key != "authorization")
    assert all(secret not in content for content in committed.values())
    assert TOKEN not in done.stdout + done.stderr
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(secret not in content for content in after.values())
    assert {p: c for p, c in after.items() if p in before} == before  # the output folder is left as it was
    assert f"{fake_hub.endpoint}/{REPO}/commit/" in done.stdout and "training_args.bin (pickle" in done.stdout


def test_cli_reports_a_missing_token_in_one_line(outputs, fake_hub, tmp_path):
    done = run_cli("publish", outputs("full"), "--repo-id", REPO, env=hub_env(fake_hub, tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hf-transfer: error: no Hugging Face token: set HF_TOKEN or run `hf auth login` "
        "(or write a local hub folder with --to DIR)"]
    assert fake_hub.requests == []  # nothing was sent


# ---------------------------------------------------------------------------------------------------------------
# Refusals: one line each, exit status 2


def broken_copy(outputs, tmp_path, change: str) -> Path:
    folder = shutil.copytree(outputs("full"), tmp_path / "run")
    if change == "no metrics":
        (folder / "metrics.json").unlink()
    elif change == "bad metrics":
        (folder / "metrics.json").write_text('{"kind": "classification"}')
    elif change == "no card":
        (folder / "README.md").unlink()
    elif change == "bad card":
        (folder / "README.md").write_text("---\nmodel-index: [unclosed\n---\n# x\n")
    elif change == "card without model-index":
        (folder / "README.md").write_text("---\nlicense: mit\n---\n# x\n")
    elif change == "pickle weights":
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    elif change == "hard-linked weights":
        os.link(folder / "model.safetensors", tmp_path / "elsewhere.safetensors")
    elif change == "token in a file":
        config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**config, "token": TOKEN}))
    return folder


@pytest.mark.parametrize("change, args, message", [
    ("missing folder", [], r"output folder .*/nowhere not found: pass the folder a classify run wrote"),
    ("no metrics", [], r"has no metrics.json \(eval results\): .*or pass --force"),
    ("bad metrics", [], r"metrics.json is not a run record"),
    ("no card", [], r"the model card .*README.md is not valid: it is missing; .*or pass --force"),
    ("bad card", [], r"README.md is not valid: it does not parse"),
    ("card without model-index", [], r"is not valid: it has no model-index \(eval results\)"),
    ("pickle weights", ["--force"], r"no model.safetensors \(only pytorch_model.bin\): only safetensors are published"),
    ("hard-linked weights", ["--force"], r"model.safetensors is a hard link: .*links are never published: "
                                         r"replace it with a copy of the file"),
    (None, ["--repo-id", "no-namespace"], r"repo id 'no-namespace' is not of the form ORG/NAME"),
    (None, ["--repo-id", "a/b/c"], r"repo id 'a/b/c' is not of the form ORG/NAME"),
    (None, ["--repo-id", "org/bad--name"], r"repo id 'org/bad--name' is invalid: use letters"),
    ("token in a file", [], r"tokenizer_config.json contains your Hugging Face token: remove it"),
    (None, ["--revision", "../../escape"], r"revision '../../escape' is not a usable branch name"),
])
def test_publish_refuses_bad_input_in_one_line(change, args, message, outputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = tmp_path / "nowhere" if change == "missing folder" else broken_copy(outputs, tmp_path, change or "")
    if "--repo-id" not in args:
        args = ["--repo-id", REPO, *args]
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", str(folder), *args, "--to", str(tmp_path / "hub")])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hf-transfer: error: ") and re.search(message, lines[0]), lines
    assert TOKEN not in lines[0]
    assert not (tmp_path / "hub").exists() or not any((tmp_path / "hub").rglob("snapshots/*/*"))


def test_broken_card_publishes_with_force_and_is_rendered_anew(outputs, tmp_path):
    folder = broken_copy(outputs, tmp_path, "bad card")
    snapshot, _ = publish_to_folder(folder, REPO, tmp_path / "hub", force=True)
    assert ModelCard.load(snapshot / "README.md").data.eval_results


def test_push_refuses_in_offline_mode(outputs, capsys):
    with pytest.raises(SystemExit):
        main(["publish", str(outputs("full")), "--repo-id", REPO])  # conftest sets HF_HUB_OFFLINE=1
    assert "HF_HUB_OFFLINE=1 is set, so nothing can be pushed" in capsys.readouterr().err


def test_adapter_with_a_local_base_and_no_hub_id_is_refused(outputs, tmp_path):
    folder = shutil.copytree(outputs("adapter"), tmp_path / "run")
    record = json.loads((folder / "metrics.json").read_text())
    record["model"]["base_model"] = None
    (folder / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="the adapter's base model '/.*' is not a Hub id"):
        plan_publish(folder, REPO)


def test_classify_push_to_hub_fails_before_any_training(tmp_path):
    config = ClassifyConfig(push_to_hub=True, hub_repo_id=None, output_dir=str(tmp_path / "out"))
    with pytest.raises(UserError, match="repo id None is not of the form ORG/NAME"):
        run_classify(config)
    config.hub_repo_id = REPO
    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 is set"):
        run_classify(config)
    assert not list(tmp_path.iterdir())
