"""`sampling.vllm` reaches vLLM: a stand-in `vllm` package (monkeypatched into sys.modules)
records what `sample_with_vllm` passes to `LLM()`, `SamplingParams` and `LoRARequest`."""
import json
import sys
import types

import pytest

from emergent.core.config import build_dataclass
from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.data.questions import Question
from emergent.sample.sampler import SamplingConfig, sample_with_vllm

QS = [Question(id="q1", type="free_form_judge_0_100", paraphrases=("Hello?",),
                samples_per_paraphrase=2)]


class _Tok:
    def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=True):
        return "|".join(m["content"] for m in msgs) + "|assistant:"


@pytest.fixture
def fake_vllm(monkeypatch):
    seen = {"llm": [], "lora": [], "generate": []}

    class LLM:
        def __init__(self, model, **kw):
            seen["llm"].append({"model": model, **kw})

        def get_tokenizer(self):
            return _Tok()

        def generate(self, prompts, params, lora_request=None):
            seen["generate"].append((list(prompts), list(params), lora_request))
            out = types.SimpleNamespace(text="an answer", finish_reason="stop", token_ids=[1, 2])
            return [types.SimpleNamespace(outputs=[out]) for _ in prompts]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LoRARequest:
        def __init__(self, name, int_id, path):
            self.args = (name, int_id, path)
            seen["lora"].append(self.args)

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora_pkg, lora_req = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    lora_req.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora_pkg)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora_req)
    return seen


def adapter(tmp_path, r):
    d = tmp_path / f"adapter_r{r}"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": 2 * r}))
    return str(d)


def test_engine_options_and_lora_request_reach_vllm(fake_vllm, tmp_path):
    cfg = build_dataclass(SamplingConfig, {"backend": "vllm", "temperature": 0.7, "vllm": {
        "tensor_parallel_size": 4, "gpu_memory_utilization": 0.85, "max_model_len": 4096}})
    ad = adapter(tmp_path, 32)
    n = sample_with_vllm("Qwen/Qwen2.5-32B-Instruct", ad, QS, tmp_path / "a.jsonl", suite="s",
                         arm="insecure", seed=3, cfg=cfg)
    assert n == 2
    assert fake_vllm["llm"] == [{"model": "Qwen/Qwen2.5-32B-Instruct", "tensor_parallel_size": 4,
                                 "gpu_memory_utilization": 0.85, "max_model_len": 4096,
                                 "seed": 3, "enable_lora": True, "max_lora_rank": 32,
                                 "max_loras": 1}]
    assert fake_vllm["lora"] == [("insecure", 1, ad)]
    prompts, params, lora = fake_vllm["generate"][0]
    assert lora.args == ("insecure", 1, ad) and len(prompts) == 2
    assert {p.kw["temperature"] for p in params} == {0.7}
    rows = read_jsonl(tmp_path / "a.jsonl")
    assert [r["adapter"] for r in rows] == [ad, ad] and rows[0]["answer"] == "an answer"


def test_defaults_no_adapter_and_rank_rounding(fake_vllm, tmp_path):
    cfg = SamplingConfig(backend="vllm")
    sample_with_vllm("m", None, QS, tmp_path / "a.jsonl", suite="s", arm="base", seed=0, cfg=cfg)
    assert fake_vllm["llm"][-1] == {"model": "m", "tensor_parallel_size": 1,
                                    "gpu_memory_utilization": 0.9, "seed": 0,
                                    "enable_lora": False}
    assert fake_vllm["lora"] == [] and fake_vllm["generate"][-1][2] is None
    # rank 4 -> vLLM's smallest size 8; an explicit rank below the adapter's is refused
    sample_with_vllm("m", adapter(tmp_path, 4), QS, tmp_path / "b.jsonl", suite="s", arm="a",
                     seed=0, cfg=cfg)
    assert fake_vllm["llm"][-1]["max_lora_rank"] == 8
    small = build_dataclass(SamplingConfig, {"backend": "vllm", "vllm": {"max_lora_rank": 16}})
    n_llm = len(fake_vllm["llm"])
    with pytest.raises(UserError, match="has rank 64, above 16"):
        sample_with_vllm("m", adapter(tmp_path, 64), QS, tmp_path / "c.jsonl", suite="s",
                         arm="a", seed=0, cfg=small)
    assert len(fake_vllm["llm"]) == n_llm  # refused before the engine is built


@pytest.mark.parametrize("block, problem", [
    ({"tensor_parallel_size": 0}, "'sampling.vllm.tensor_parallel_size' must be >= 1"),
    ({"gpu_memory_utilization": 1.5}, "'sampling.vllm.gpu_memory_utilization' must be in (0, 1]"),
    ({"max_model_len": 0}, "'sampling.vllm.max_model_len' must be >= 1"),
    ({"max_lora_rank": 24}, "'sampling.vllm.max_lora_rank' must be one of 8, 16"),
])
def test_bad_vllm_options_are_refused_at_load(block, problem):
    with pytest.raises(UserError) as e:
        build_dataclass(SamplingConfig, {"vllm": block}, source="exp.yaml", prefix="sampling.")
    assert problem in str(e.value)
