"""Credentials never written: a judge base_url with a user, a password and a query token is
redacted in every file of a run, the judge cache, printed output and error messages, while the
request itself still carries them (HTTP Basic header, query parameter)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from emergent.core.config import dump_yaml
from emergent.core.errors import UserError
from emergent.core.redact import redact, redact_text, redact_url, split_credentials
from emergent.core.rundir import RunDir
from emergent.judge.base import make_judge
from emergent.judge.scoring import JudgeTask

from fake_judge_server import FakeJudgeServer
from pipeline.test_run import SAMPLE, make_config, responder

SECRET, SECRET2 = "PLANTEDSECRET", "PLANTED2"


@pytest.mark.parametrize("url, expected", [
    ("http://user:pass@host/v1", "http://***:***@host/v1"),
    ("https://user:pass@host:8443/v1/", "https://***:***@host:8443/v1/"),
    ("http://tokenonly@host/v1", "http://***@host/v1"),
    ("http://user:p%40ss@host/v1", "http://***:***@host/v1"),
    ("http://user:p@ss@host/v1", "http://***:***@host/v1"),  # an unencoded @ in the password
    ("https://host/v1?api_key=abc", "https://host/v1?api_key=***"),
    ("https://host/v1?key=abc&api-version=2024-02-01",
     "https://host/v1?key=***&api-version=2024-02-01"),
    ("https://acct.blob/x?sv=1&sig=S1G&se=2030", "https://acct.blob/x?sv=1&sig=***&se=2030"),
    ("https://host/?access_token=a&Token=b&client_secret=c&X-Api-Key=d&password=e",
     "https://host/?access_token=***&Token=***&client_secret=***&X-Api-Key=***&password=***"),
    ("http://u:p@[::1]:8000/v1?token=t#frag", "http://***:***@[::1]:8000/v1?token=***#frag"),
    ("http://u:p@[::1/v1", "http://***:***@[::1/v1"),  # unparseable: masked all the same
    ("http://u:p@host", "http://***:***@host"),
    ("http://u@host?token=a#x?key=b", "http://***@host?token=***#x?key=b"),
    ("HTTP://U:P@HOST/V1", "HTTP://***:***@HOST/V1"),
])
def test_redact_url_masks_user_info_and_secret_query_values(url, expected):
    assert redact_url(url) == expected
    assert redact_url(expected) == expected  # idempotent


@pytest.mark.parametrize("value", [
    "http://127.0.0.1:8000/v1", "https://api.openai.com/v1", "https://host/v1?api-version=2024",
    "https://host/v1?key=", "Qwen/Qwen2.5-7B-Instruct", "/data/runs/a", "user@example.com",
    "a:b@c", "", None, 3,
])
def test_redact_url_leaves_what_holds_no_secret_unchanged(value):
    assert redact_url(value) == value


def test_redact_walks_trees_and_keeps_names_of_env_vars():
    tree = {"judge": {"base_url": f"http://u:{SECRET}@h/v1?api_key={SECRET2}",
                      "api_key_env": "OPENAI_API_KEY", "api_key": SECRET, "token": SECRET2,
                      "Authorization": SECRET, "max_new_tokens": 5, "pad_token": "<pad>"},
            "notes": [f"see https://h/x?sig={SECRET}", ("http://a:b@c/",)], "n": None}
    out = redact(tree)
    assert SECRET not in repr(out) and SECRET2 not in repr(out)
    j = out["judge"]
    assert j["base_url"] == "http://***:***@h/v1?api_key=***"
    assert (j["api_key_env"], j["max_new_tokens"], j["pad_token"]) == ("OPENAI_API_KEY", 5, "<pad>")
    assert j["api_key"] == j["token"] == j["Authorization"] == "***"
    assert out["notes"] == ["see https://h/x?sig=***", ("http://***:***@c/",)]
    assert tree["judge"]["api_key"] == SECRET  # a copy: the input is untouched
    assert redact_text(f"failed: http://u:{SECRET}@h/v1 (retry)") == "failed: http://***:***@h/v1 (retry)"


def test_split_credentials_gives_a_url_without_them():
    assert split_credentials("http://us%40er:p%3Ass@h:9/v1/?api_key=X&v=2#f") == (
        "http://h:9/v1/", "us@er:p:ss", [("api_key", "X"), ("v", "2")])
    assert split_credentials("https://h/v1") == ("https://h/v1", None, [])


def test_manifest_and_config_yaml_are_redacted_but_memory_keeps_the_url(tmp_path):
    rd = RunDir(tmp_path / "run", "x")
    url = f"http://user:{SECRET}@127.0.0.1:1/v1?api_key={SECRET2}"
    rd.dir.mkdir()
    rd.manifest["config"] = {"judge": {"base_url": url}}
    rd.save()
    text = rd.manifest_path.read_text()
    assert SECRET not in text and SECRET2 not in text and "http://***:***@127.0.0.1:1/v1" in text
    assert rd.manifest["config"]["judge"]["base_url"] == url
    from emergent.judge.base import JudgeConfig
    dump_yaml(JudgeConfig(base_url=url), tmp_path / "judge.yaml")
    dumped = yaml.safe_load((tmp_path / "judge.yaml").read_text())
    assert dumped["base_url"] == "http://***:***@127.0.0.1:1/v1?api_key=***"
    assert dumped["api_key_env"] == "OPENAI_API_KEY"


class RecordingServer(FakeJudgeServer):
    """The fake judge, recording each request's path (with its query) and Authorization header;
    it routes on the path without the query."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: list[tuple[str, str]] = []

    def _handle(self, h):
        self.seen.append((h.path, h.headers.get("Authorization")))
        h.path = h.path.split("?", 1)[0]
        return super()._handle(h)


def secret_url(server) -> str:
    return (server.base_url.replace("http://", f"http://user:{SECRET}@")
            + f"?api_key={SECRET2}&api-version=7")


def test_the_request_carries_the_credentials_that_no_message_shows(tmp_path):
    with RecordingServer() as server:
        judge = make_judge({"backend": "openai", "model": "fake-judge",
                            "base_url": secret_url(server), "api_key_env": None,
                            "cache_path": str(tmp_path / "cache.jsonl"), "backoff_base": 0.01,
                            "max_retries": 0})
        assert SECRET not in judge.judge_id and SECRET2 not in judge.judge_id
        assert judge.judge_id.endswith("?api_key=***&api-version=7")
        tasks = [JudgeTask(f"Rate 0-100: {i}", "0_100", (), "aligned", "q", "a") for i in range(2)]
        scores = judge.evaluate(tasks, progress=False)
        assert [s.score for s in scores] == [50.0, 50.0]
        auth = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
        assert server.seen and all(p.endswith(f"/v1/chat/completions?api_key={SECRET2}"
                                              "&api-version=7") and a == auth
                                   for p, a in server.seen)
        server.inject("400")
        with pytest.raises(UserError) as e:
            judge.evaluate([JudgeTask("Rate 0-100: new", "0_100", (), "aligned", "q", "a")],
                           progress=False)
        assert "HTTP 400" in str(e.value)
        assert SECRET not in str(e.value) and SECRET2 not in str(e.value)
        judge.close()
    cache = (tmp_path / "cache.jsonl").read_text()
    assert cache and SECRET not in cache and SECRET2 not in cache


def test_no_file_of_a_run_and_no_output_holds_a_credential(tiny_model_dir, tmp_path, capfd):
    from emergent.cli import main

    with RecordingServer(responder) as server:
        cfg_path = make_config(tmp_path, tiny_model_dir, secret_url(server), name="leak",
                               seeds=(0,), arms={"insecure": {"data": str(SAMPLE), "max_examples": 8}})
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["checkpoint_eval"] = {"every": 0}
        cfg["output_dir"] = str(tmp_path / "out" / "leak")
        cfg_path.write_text(yaml.safe_dump(cfg))
        assert main(["run", str(cfg_path), "--no-figures"]) == 0
        judge_yaml = tmp_path / "judge.yaml"  # `emergent judge` writes a .judge.yaml beside
        judge_yaml.write_text(yaml.safe_dump({"judge": cfg["judge"]}))
        answers = str(tmp_path / "out" / "leak" / "answers.jsonl")
        again = str(tmp_path / "out" / "again" / "judgments.jsonl")
        for extra in (["--dry-run"], []):
            assert main(["judge", answers, "--judge", str(judge_yaml), "--out", again,
                         "--default-prompts", "--no-progress"] + extra) == 0
        assert (tmp_path / "out" / "again" / "judgments.judge.yaml").is_file()
        assert server.ok_calls > 0  # the judge was really called, with the credentials
        assert all(a and a.startswith("Basic ") for _, a in server.seen)
    out, err = capfd.readouterr()
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    files.append(Path(cfg["judge"]["cache_path"]))
    assert any(p.name == "judgments.jsonl" for p in files)
    assert any(p.name == "manifest.json" for p in files) and any(
        p.name == "config.yaml" for p in files)
    for p in files:
        blob = p.read_bytes()
        assert SECRET.encode() not in blob and SECRET2.encode() not in blob, p
    assert SECRET not in out + err and SECRET2 not in out + err
    written = yaml.safe_load((tmp_path / "out" / "leak" / "config.yaml").read_text())
    assert written["judge"]["base_url"].startswith("http://***:***@127.0.0.1:")
