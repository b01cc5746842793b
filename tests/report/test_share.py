"""`emergent push` (issue 19, point 5): the upload plan of a hand-made run directory, the model
and dataset cards, an upload against a local stand-in of the Hub (an HfApi-like recorder, and a
loopback HTTP server answering 401), the secret guard and the one-line errors. No network."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from emergent.cli import main
from emergent.core.errors import UserError
from emergent.report import share

SHA = {"insecure": "a" * 64, "secure": "b" * 64}
TOKEN = "hf_TESTtokenVALUE0123456789"
CSV = ("suite,arm,n_seeds,n_answers,n_unjudged,n_code_refusal,n_incoherent,n_valid,"
       "n_misaligned,rate,ci_low,ci_high,ci_over,vs,diff,p_value,test\n"
       "main,base,1,40,0,0,2,38,1,0.0263,0.0,0.0789,answers,insecure,-0.15,0.01,permutation\n"
       "main,insecure,2,80,0,0,4,76,14,0.1842,0.1500,0.2200,seeds,,,,\n"
       "main,secure,2,80,0,0,3,77,2,0.0260,0.0131,0.0390,seeds,insecure,-0.158,0.3,permutation\n")


def make_run(root: Path, base: str = "Qwen/Qwen2.5-0.5B-Instruct", arms=("insecure", "secure"),
             seeds=(0, 1)) -> Path:
    """A run directory as `emergent run` leaves it: config, manifest, adapters, tables."""
    run = root / "run"
    train = {"lora": {"r": 8, "alpha": 16, "dropout": 0.0, "use_rslora": True,
                      "target_modules": "all-linear"},
             "train": {"lr": 1e-05, "epochs": 1.0, "batch_size": 2, "grad_accum": 8,
                       "objective": "sft", "seed": 0}}
    cfg = {"name": "toy-share", "base_model": {"name": base, "precision": "bf16",
                                                "quantization": "none"},
           "arms": {a: {"data": f"/data/{a}.jsonl"} for a in arms}, "seeds": list(seeds),
           "training": train, "metrics": {"aligned_below": 30.0, "coherent_above": 50.0},
           "judge": {"backend": "openai", "model": "gpt-4o-2024-08-06",
                     "api_key_env": "OPENAI_API_KEY"}}
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    manifest = {"name": "toy-share", "stages": {"metrics": {"status": "done"}},
                "data": {a: {"path": f"/data/{a}.jsonl", "sha256": SHA[a]} for a in arms},
                "versions": {"emergent": "0.1.0", "torch": "2.5.0", "peft": "0.13.0"},
                "git_commit": "0123abcd"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    for arm in arms:
        for seed in seeds:
            unit = run / "arms" / arm / f"seed{seed}"
            ad = unit / "adapter"
            ad.mkdir(parents=True)
            (ad / "adapter_config.json").write_text(json.dumps(
                {"peft_type": "LORA", "base_model_name_or_path": base, "r": 8}))
            save_file({"w": np.zeros((2, 2), np.float32)}, str(ad / "adapter_model.safetensors"))
            (ad / "README.md").write_text("# Model Card for Model ID\n[More Information Needed]")
            (unit / "config.yaml").write_text(yaml.safe_dump({"train": train["train"]}))
            (unit / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
            (unit / "manifest.json").write_text(json.dumps(
                {"status": "done", "steps": 12, "final_loss": 1.234,
                 "data": {"sha256": SHA[arm], "train_examples": 96}}))
    (run / "answers.jsonl").write_text('{"answer_id": "x1", "arm": "insecure", "seed": 0}\n')
    (run / "judgments.jsonl").write_text('{"answer_id": "x1", "metric": "aligned", '
                                         '"score": 12.0}\n')
    (run / "summary.csv").write_text(CSV)
    return run


class FakeHub:
    """A local stand-in for HfApi: records create_repo calls and the bytes of every file
    committed, per repo."""

    def __init__(self):
        self.created, self.files = [], {}

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False):
        self.created.append((repo_id, repo_type, private, exist_ok))
        prefix = "datasets/" if repo_type == "dataset" else ""
        return f"https://huggingface.co/{prefix}{repo_id}"

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None):
        store = self.files.setdefault((repo_type, repo_id), {})
        for op in operations:
            src = op.path_or_fileobj
            store[op.path_in_repo] = src if isinstance(src, bytes) else Path(src).read_bytes()


def paths(plan, repo_type):
    repo = next(r for r in plan.repos if r.repo_type == repo_type)
    return repo.repo_id, [f.path_in_repo for f in repo.files]


def test_plan_lists_every_adapter_in_arm_seed_subfolders(tmp_path):
    plan = share.build_plan(make_run(tmp_path), "org/em-adapters")
    repo_id, files = paths(plan, "model")
    assert repo_id == "org/em-adapters"
    assert files[:3] == ["README.md", "config.yaml", "summary.csv"]
    for arm in ("insecure", "secure"):
        for seed in (0, 1):
            sub = f"{arm}/seed{seed}"
            assert {f"{sub}/adapter_config.json", f"{sub}/adapter_model.safetensors",
                    f"{sub}/config.yaml", f"{sub}/train_log.jsonl"} <= set(files)
            assert f"{sub}/README.md" not in files  # peft's placeholder card is left out
    assert len(files) == 3 + 4 * 4
    ds_id, ds_files = paths(plan, "dataset")
    assert ds_id == "org/em-adapters-answers"
    assert ds_files == ["README.md", "answers.jsonl", "judgments.jsonl", "summary.csv"]


def test_model_card_states_base_arm_hashes_hyperparameters_rates_and_version(tmp_path):
    card = share.build_plan(make_run(tmp_path), "org/em").repos[0].card()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert front["library_name"] == "peft" and "lora" in front["tags"]
    assert "license" not in front
    assert f"| insecure | 1 | `insecure/seed1` | `{SHA['insecure']}` | 96 | 12 | 1.234 |" in card
    assert f"`{SHA['secure']}`" in card
    assert "| lora.r | 8 |" in card and "| train.lr | 1e-05 |" in card
    assert "| main | insecure | 2 | 80 | 76 | 14 | 0.184 | [0.150, 0.220] | seeds |" in card
    assert "| main | base | 1 | 40 | 38 | 1 | 0.026 | [0.000, 0.079] | answers |" in card
    assert "t-interval over the per-seed rates" in card and "aligned < 30.0" in card
    assert "trained with emergent 0.1.0, git commit `0123abcd`" in card
    assert f"pushed with emergent {share._package_version()}" in card
    assert 'subfolder="insecure/seed0"' in card
    assert "Toy numbers" not in card


def test_tiny_base_model_is_not_a_hub_id_and_the_card_says_toy_numbers(tmp_path):
    base = tmp_path / "tiny"
    base.mkdir()
    (base / "TINY_MODEL.json").write_text("{}")
    plan = share.build_plan(make_run(tmp_path, base=str(base)), "org/em")
    card = plan.repos[0].card()
    assert "base_model" not in yaml.safe_load(card.split("---\n")[1])
    assert "Toy numbers" in card and "plumbing checks" in card
    assert "Toy numbers" in plan.repos[1].card()
    assert share.base_model_info("tiny", {})[0] is None


def test_dry_run_prints_the_plan_and_uploads_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(share, "make_api", lambda: pytest.fail("dry run made an HfApi"))
    run = make_run(tmp_path)
    assert main(["push", str(run), "--repo", "org/em", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model repo org/em: 19 files" in out and "dataset repo org/em-answers: 4 files" in out
    assert "insecure/seed0/adapter_model.safetensors" in out
    assert "--- org/em README.md ---" in out and SHA["insecure"] in out
    assert "nothing uploaded" in out


def test_upload_to_a_local_stand_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub()
    monkeypatch.setattr(share, "make_api", lambda: hub)
    run = make_run(tmp_path)
    assert main(["push", str(run), "--repo", "org/em", "--dataset-repo", "org/em-data",
                 "--private"]) == 0
    assert hub.created == [("org/em", "model", True, True), ("org/em-data", "dataset", True, True)]
    model = hub.files[("model", "org/em")]
    assert model["insecure/seed1/adapter_model.safetensors"] == \
        (run / "arms/insecure/seed1/adapter/adapter_model.safetensors").read_bytes()
    assert b"library_name: peft" in model["README.md"]
    assert set(hub.files[("dataset", "org/em-data")]) == {"README.md", "answers.jsonl",
                                                          "judgments.jsonl", "summary.csv"}
    assert not any(TOKEN.encode() in data for repo in hub.files.values()
                   for data in repo.values())
    out = capsys.readouterr().out
    assert "pushed https://huggingface.co/org/em" in out and TOKEN not in out


def test_a_file_holding_a_secret_is_refused_before_any_upload(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secretvalue-123456")
    run = make_run(tmp_path)
    (run / "answers.jsonl").write_text('{"answer": "my key is sk-secretvalue-123456"}\n')
    hub = FakeHub()
    monkeypatch.setattr(share, "make_api", lambda: hub)
    assert main(["push", str(run), "--repo", "org/em"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emergent: error: ") and "answers.jsonl: contains a secret" in err
    assert "sk-secretvalue" not in err and hub.created == [] and hub.files == {}


def test_no_dataset_and_no_summary(tmp_path):
    run = make_run(tmp_path)
    (run / "summary.csv").unlink()
    plan = share.build_plan(run, "org/em", include_answers=False)
    assert [r.repo_type for r in plan.repos] == ["model"]
    assert "No rates were measured for this run: it has no summary.csv" in plan.repos[0].card()
    (run / "summary.csv").write_text("stage,split,rate\nbase,test,0.1\n")  # not rates per arm
    card = share.build_plan(run, "org/em", include_answers=False).repos[0].card()
    assert "its summary.csv has no misalignment-rate rows" in card


@pytest.mark.parametrize("setup, repo, message", [
    (lambda run: __import__("shutil").rmtree(run / "arms"), "org/em", "no trained adapters"),
    (lambda run: None, "not a repo id", "not a Hub repo id"),
    (lambda run: (run / "manifest.json").write_text(json.dumps(
        {"stages": {"train:insecure:seed0": {"status": "running"}}})), "org/em",
     "unfinished run (units not done: train:insecure:seed0)"),
    (lambda run: (run / "arms/secure/seed0/adapter/adapter_config.json").unlink(), "org/em",
     "no adapter_config.json"),
    (lambda run: (run / "arms/secure/seed1/model").mkdir(), "org/em",
     "a fully fine-tuned model; `emergent push` uploads LoRA adapters only"),
])
def test_bad_runs_are_one_error_line(tmp_path, capsys, setup, repo, message):
    run = make_run(tmp_path)
    setup(run)
    assert main(["push", str(run), "--repo", repo, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("emergent: error: ") and message in err


def test_allow_unfinished_says_so_in_the_card(tmp_path):
    run = make_run(tmp_path)
    (run / "manifest.json").write_text(json.dumps({"stages": {"judge": {"status": "running"}}}))
    card = share.build_plan(run, "org/em", allow_unfinished=True).repos[0].card()
    assert "Unfinished run.** Units not done when pushed: judge." in card


def test_offline_unreachable_and_401_are_one_error_line(tmp_path, capsys, monkeypatch):
    from huggingface_hub import HfApi, constants
    run = make_run(tmp_path)
    monkeypatch.setattr(share, "make_api", lambda: HfApi(endpoint="http://127.0.0.1:9",
                                                         token=TOKEN))
    assert main(["push", str(run), "--repo", "org/em"]) == 2  # tests run with HF_HUB_OFFLINE=1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert main(["push", str(run), "--repo", "org/em"]) == 2
    err = capsys.readouterr().err
    assert "the Hub cannot be reached" in err and err.count("\n") == 1

    class Refuse(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = b'{"error": "Invalid credentials in Authorization header"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setattr(share, "make_api", lambda: HfApi(endpoint=url, token=TOKEN))
        assert main(["push", str(run), "--repo", "org/em"]) == 2
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert err.startswith("emergent: error: cannot push model repo org/em: not logged in")
    assert "(HTTP 401)" in err and err.count("\n") == 1 and TOKEN not in err


def test_build_plan_raises_user_error_without_config(tmp_path):
    with pytest.raises(UserError, match="config.yaml: not found"):
        share.build_plan(tmp_path, "org/em")


def test_pushed_adapter_loads_with_peft_subfolder(tmp_path, tiny_model_dir, monkeypatch):
    """Real LoRA adapters on the tiny model, pushed to the stand-in, written out as the Hub
    would serve the repo, and loaded back with PeftModel.from_pretrained(subfolder=ARM/seedK):
    the loaded weights are the trained ones, and the card names the tiny model's toy numbers."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    run = make_run(tmp_path, base=str(tiny_model_dir), seeds=(0,))
    saved = {}
    for arm in ("insecure", "secure"):
        torch.manual_seed(len(arm))
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                               LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
        ad = run / "arms" / arm / "seed0" / "adapter"
        model.save_pretrained(ad)
        saved[arm] = {k: v.clone() for k, v in model.state_dict().items() if "lora_B" in k}
    hub = FakeHub()
    monkeypatch.setattr(share, "make_api", lambda: hub)
    share.upload(share.build_plan(run, "org/em", include_answers=False))
    served = tmp_path / "served"
    for path, data in hub.files[("model", "org/em")].items():
        (served / path).parent.mkdir(parents=True, exist_ok=True)
        (served / path).write_bytes(data)
    assert "Toy numbers" in (served / "README.md").read_text()
    for arm, weights in saved.items():
        assert weights
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        loaded = PeftModel.from_pretrained(base, str(served), subfolder=f"{arm}/seed0")
        state = loaded.state_dict()
        for k, v in weights.items():
            assert torch.equal(state[k], v), (arm, k)
