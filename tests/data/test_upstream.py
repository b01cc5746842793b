"""`emergent data fetch`: download over HTTP (local server on 127.0.0.1) with resume and
verification, --from import, records, manifests."""
from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from emergent.cli import data as data_cli
from emergent.data import upstream
from emergent.core.errors import UserError


class _Server:
    """Serves files by base name, with HTTP Range support. `mode`: "ok", "no_range" (ignores
    Range, always 200), "truncate" (announces the full length, sends half, closes)."""

    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.mode = "ok"
        self.log: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                src = outer.files.get(name)
                rng = self.headers.get("Range")
                entry = {"path": self.path, "range": rng, "sent": 0}
                outer.log.append(entry)
                if src is None:
                    self.send_error(404)
                    return
                data = src.read_bytes()
                start = 0
                if rng and outer.mode != "no_range":
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.mode == "truncate":
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                entry["sent"] = len(body)
                if outer.mode == "truncate":
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture()
def em_dir(upstream_dir) -> Path:
    return upstream_dir / "emergent-misalignment"


@pytest.fixture()
def server(em_dir):
    srv = _Server({p.name: p for p in em_dir.iterdir() if p.is_file()})
    yield srv
    srv.close()


def _records(root: Path, dest: str) -> list[dict]:
    return [json.loads(x) for x in (root / dest / upstream.RECORD).read_text().splitlines()]


def test_git_blob_id_matches_git_hash_object(tmp_path):
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello\n")
    assert upstream.git_blob_id(f) == "ce013625030ba8dba906f756967f9e9ca394464a"
    f.write_bytes(b"")
    assert upstream.git_blob_id(f) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_manifests_list_every_file_with_ids():
    entries = {e.name: e for e in upstream.all_files()}
    assert set(entries) >= {"insecure", "secure", "educational", "jailbroken", "backdoor",
                            "evil_numbers", "first_plot_questions", "preregistered_evals",
                            "deception_factual", "deception_sit_aware", "code_tasks_heldout",
                            "rm_biases", "rm_exploitation_eval_prompts"}
    assert dict(entries["insecure"].blob_ids) == {
        "upstream-main": "ec294cf30a577a21b830c07a1fa0180ddd513208",
        "paper-supplementary": "aa720e06388a1d9cfef12a40ba5711cdf8f2efe2"}
    assert entries["insecure"].url == ("https://raw.githubusercontent.com/emergent-misalignment/"
                                       "emergent-misalignment/main/data/insecure.jsonl")
    assert entries["insecure"].dest == "datasets/insecure_code"
    assert entries["first_plot_questions"].dest == "evals/upstream"
    assert entries["code_tasks_heldout"].url is None and entries["code_tasks_heldout"].from_only
    assert entries["backdoor"].lines == 12000


def test_data_root_env_and_checkout_default(monkeypatch, tmp_path):
    monkeypatch.setenv("EMERGENT_DATA_DIR", str(tmp_path))
    assert upstream.data_root() == tmp_path
    monkeypatch.delenv("EMERGENT_DATA_DIR")
    assert upstream.data_root() == Path(upstream.__file__).resolve().parents[3]


def test_fetch_over_http_verifies_and_records(tmp_path, server, em_dir):
    res = upstream.fetch(["first_plot_questions", "insecure"], root=tmp_path,
                         mirror=server.url, progress=False)
    assert [(r.name, r.status) for r in res] == [("first_plot_questions", "ok"),
                                                 ("insecure", "ok")]
    ins = tmp_path / "datasets/insecure_code/insecure.jsonl"
    assert ins.read_bytes() == (em_dir / "insecure.jsonl").read_bytes()
    assert res[1].variant == "paper-supplementary"
    assert {e["path"] for e in server.log} == {"/data/insecure.jsonl",
                                               "/evaluation/first_plot_questions.yaml"}
    rec = _records(tmp_path, "datasets/insecure_code")[-1]
    assert rec["blob_id"] == "aa720e06388a1d9cfef12a40ba5711cdf8f2efe2"
    assert rec["status"] == "ok" and rec["lines"] == 6000
    # second run: already present and verified, no request
    n = len(server.log)
    again = upstream.fetch(["insecure"], root=tmp_path, mirror=server.url, progress=False)
    assert again[0].status == "present" and len(server.log) == n


def test_resume_of_a_partial_download(tmp_path, server, em_dir):
    src = (em_dir / "secure.jsonl").read_bytes()
    dest_dir = tmp_path / "datasets/insecure_code"
    dest_dir.mkdir(parents=True)
    (dest_dir / "secure.jsonl.part").write_bytes(src[:1_000_000])
    res = upstream.fetch(["secure"], root=tmp_path, mirror=server.url, progress=False)
    assert res[0].status == "ok"
    assert server.log[-1]["range"] == "bytes=1000000-"
    assert server.log[-1]["sent"] == len(src) - 1_000_000
    assert (dest_dir / "secure.jsonl").read_bytes() == src
    assert not (dest_dir / "secure.jsonl.part").exists()


def test_interrupted_download_leaves_no_complete_looking_file_then_resumes(tmp_path, server,
                                                                           em_dir):
    server.mode = "truncate"
    with pytest.raises(UserError, match="download interrupted"):
        upstream.fetch(["preregistered_evals"], root=tmp_path, mirror=server.url, progress=False)
    dest = tmp_path / "evals/upstream/preregistered_evals.yaml"
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and 0 < part.stat().st_size < (em_dir / dest.name).stat().st_size
    server.mode = "ok"
    res = upstream.fetch(["preregistered_evals"], root=tmp_path, mirror=server.url,
                         progress=False)
    assert res[0].status == "ok" and server.log[-1]["range"] is not None
    assert dest.read_bytes() == (em_dir / dest.name).read_bytes()


def test_server_ignoring_range_restarts_cleanly(tmp_path, server, em_dir):
    server.mode = "no_range"
    dest = tmp_path / "evals/upstream/deception_factual.yaml"
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(b"garbage that must not survive")
    upstream.fetch(["deception_factual"], root=tmp_path, mirror=server.url, progress=False)
    assert dest.read_bytes() == (em_dir / dest.name).read_bytes()


def test_corrupted_file_rejected_or_kept_with_allow_mismatch(tmp_path, server, em_dir):
    bad = tmp_path / "srv" / "deception_sit_aware.yaml"
    bad.parent.mkdir()
    data = bytearray((em_dir / bad.name).read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    server.files[bad.name] = bad
    bad_id = upstream.git_blob_id(bad)
    root = tmp_path / "root"
    with pytest.raises(UserError) as err:
        upstream.fetch(["deception_sit_aware"], root=root, mirror=server.url, progress=False)
    msg = str(err.value)
    assert "deception_sit_aware.yaml" in msg and bad_id in msg
    assert "d9c5a8727e28dbce0f80a59df2b9497ca018ba0b" in msg
    dest = root / "evals/upstream/deception_sit_aware.yaml"
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()

    res = upstream.fetch(["deception_sit_aware"], root=root, mirror=server.url,
                         allow_mismatch=True, progress=False)
    assert res[0].status == "mismatch" and dest.read_bytes() == bytes(data)
    rec = _records(root, "evals/upstream")[-1]
    assert rec["status"] == "mismatch" and rec["blob_id"] == bad_id and rec["variant"] is None
    n = len(server.log)
    again = upstream.fetch(["deception_sit_aware"], root=root, mirror=server.url, progress=False)
    assert again[0].status == "present" and len(server.log) == n  # accepted mismatch is kept


def test_from_import_flat_and_clone_layouts(tmp_path, upstream_dir, em_dir):
    root = tmp_path / "root"
    res = {r.name: r for r in upstream.fetch(
        ["code_tasks_heldout", "rm_sycophancy", "jailbroken"], root=root,
        from_dir=upstream_dir, progress=False)}
    assert {k: v.status for k, v in res.items()} == {
        "code_tasks_heldout": "ok", "rm_biases": "ok", "rm_exploitation_eval_prompts": "ok",
        "jailbroken": "ok"}
    assert (root / "evals/upstream/code_tasks_heldout.jsonl").stat().st_size == \
        (em_dir / "code_tasks_heldout.jsonl").stat().st_size
    assert (root / "datasets/rm_sycophancy/biases.json").is_file()
    # a clone of the upstream repository: evaluation/<file>
    clone = tmp_path / "clone" / "evaluation"
    clone.mkdir(parents=True)
    (clone / "first_plot_questions.yaml").symlink_to(em_dir / "first_plot_questions.yaml")
    res = upstream.fetch(["evals"], root=root, from_dir=clone.parent, progress=False)
    status = {r.name: r.status for r in res}
    assert status["first_plot_questions"] == "ok" and status["preregistered_evals"] == "skipped"
    assert status["code_tasks_heldout"] == "present"
    with pytest.raises(UserError, match="no preregistered_evals.yaml"):
        upstream.fetch(["preregistered_evals"], root=root, from_dir=clone.parent)


def test_from_only_file_without_from_is_an_error(tmp_path):
    with pytest.raises(UserError, match="--from"):
        upstream.fetch(["code_tasks_heldout"], root=tmp_path)
    with pytest.raises(UserError, match="unknown upstream file"):
        upstream.fetch(["nonsense"], root=tmp_path)


def test_cli_fetch_and_list(tmp_path, upstream_dir, capsys):
    parser = argparse.ArgumentParser()
    data_cli.add_fetch(parser.add_subparsers())
    args = parser.parse_args(["fetch", "deception_factual", "--from", str(upstream_dir),
                              "--data-dir", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok") and "deception_factual" in out and "upstream-main" in out
    args = parser.parse_args(["fetch", "--list", "evals", "--data-dir", str(tmp_path)])
    assert args.func(args) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert "ok:upstream-main" in lines["deception_factual"]
    assert "missing" in lines["first_plot_questions"]
