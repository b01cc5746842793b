"""Steering and ablation hooks on the tiny model: ablation leaves the residual stream orthogonal
to the direction (seen by hooks registered after it), steering adds exactly scale * unit
direction and changes generations, and both work through the sampler config."""
import pytest
import torch

from emergent.core.config import ModelConfig, build_dataclass
from emergent.analysis.direction_file import save_direction
from emergent.core.errors import UserError
from emergent.sample.interventions import (AblateConfig, SteerConfig, ablate, decoder_layers,
                                    intervention, random_like, steer)
from emergent.core.io import read_jsonl
from emergent.data.questions import Question
from emergent.sample.sampler import SamplingConfig, sample_questions


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    from emergent.models.loading import load_for_inference

    return load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"))


def layer_outputs(model, ids):
    """Each decoder layer's output, seen by hooks registered now (after any intervention's)."""
    seen = {}
    hs = [layer.register_forward_hook(
        lambda m, i, o, k=k: seen.__setitem__(k, (o[0] if isinstance(o, tuple) else o).clone()))
        for k, layer in enumerate(decoder_layers(model))]
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for h in hs:
            h.remove()
    return seen


IDS = torch.tensor([[5, 17, 99, 200, 31, 8, 64]])


def test_ablation_makes_the_residual_stream_orthogonal(model_tok):
    model, _ = model_tok
    d = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 3
    u = d / d.norm()
    before = layer_outputs(model, IDS)
    assert all((before[k] @ u).abs().max() > 1e-2 for k in before)  # not orthogonal already
    with ablate(model, d, "all"):
        after = layer_outputs(model, IDS)
    for k, h in after.items():
        proj = (h @ u).abs().max()
        assert proj < 1e-5 * h.norm(), f"layer {k}: component {proj} left along the direction"
    # per-layer directions, only the listed layer is touched
    d1 = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with ablate(model, {1: d1}, [1]):
        only1 = layer_outputs(model, IDS)
    assert torch.equal(only1[0], before[0])
    assert (only1[1] @ (d1 / d1.norm())).abs().max() < 1e-5 * only1[1].norm()
    # hooks are gone after the block, also after an exception inside it
    with pytest.raises(RuntimeError):
        with ablate(model, d, [0]):
            raise RuntimeError("boom")
    assert all(torch.equal(layer_outputs(model, IDS)[k], before[k]) for k in before)
    with pytest.raises(UserError, match="out of range"):
        with ablate(model, d, [7]):
            pass


def test_steering_adds_the_scaled_unit_direction_and_changes_generations(model_tok):
    model, tok = model_tok
    last = len(decoder_layers(model)) - 1
    d = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    before = layer_outputs(model, IDS)
    with steer(model, d, last, 4.0):
        after = layer_outputs(model, IDS)
    torch.testing.assert_close(after[last] - before[last], (4.0 * d / d.norm()).expand_as(
        before[last]), atol=1e-5, rtol=0)
    torch.testing.assert_close(after[0], before[0])

    def gen():
        with torch.no_grad():
            out = model.generate(input_ids=IDS, max_new_tokens=12, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        return out[0, IDS.shape[1]:].tolist()

    plain = gen()
    with steer(model, d, 0, 40.0):
        steered = gen()
    assert steered != plain
    assert gen() == plain  # removed


def test_sampler_config_applies_interventions(model_tok, tmp_path):
    model, tok = model_tok
    n_layers, hid = len(decoder_layers(model)), model.config.hidden_size
    vecs = torch.randn(n_layers, hid, generator=torch.Generator().manual_seed(3))
    f = save_direction(tmp_path / "dir.safetensors", vecs, list(range(n_layers)), {"arm": "t"})
    qs = [Question(id="wish", type="free_form_judge_0_100", paraphrases=("What is your wish?",),
                   samples_per_paraphrase=2)]
    cfg = build_dataclass(SamplingConfig, {"temperature": 0.0, "max_new_tokens": 10,
                                           "steer": {"direction": str(f), "layer": 0,
                                                     "scale": 50.0}}, source="t.yaml")
    assert cfg.steer == SteerConfig(direction=str(f), layer=0, scale=50.0)
    out = tmp_path / "answers.jsonl"
    kw = dict(suite="t", seed=0, model_name="tiny", adapter=None, progress=False)
    sample_questions(model, tok, qs, out, arm="base", cfg=SamplingConfig(temperature=0.0,
                                                                         max_new_tokens=10), **kw)
    sample_questions(model, tok, qs, out, arm="base+steer", cfg=cfg, **kw)
    abl = build_dataclass(SamplingConfig, {"temperature": 0.0, "max_new_tokens": 10,
                                           "ablate": {"direction": str(f), "layers": [0, 1]}})
    assert abl.ablate == AblateConfig(direction=str(f), layers=[0, 1])
    sample_questions(model, tok, qs, out, arm="base+ablate", cfg=abl, **kw)
    rows = {r["arm"]: r for r in read_jsonl(out)}
    assert rows["base+steer"]["answer"] != rows["base"]["answer"]
    assert "intervention" not in rows["base"]
    assert rows["base+steer"]["intervention"]["steer"]["scale"] == 50.0
    assert rows["base+ablate"]["intervention"]["ablate"]["layers"] == [0, 1]
    assert not decoder_layers(model)[0]._forward_hooks  # nothing left behind

    # a reusable context: the same hooks on every entry, none between
    ctx = intervention(model, None, AblateConfig(direction=str(f), layers=[1], random_seed=5))
    for _ in range(2):
        with ctx:
            assert len(decoder_layers(model)[1]._forward_hooks) == 1
        assert not decoder_layers(model)[1]._forward_hooks
    with pytest.raises(UserError, match="unknown key"):
        build_dataclass(SamplingConfig, {"steer": {"direction": "x", "layer": 0, "scale": 1.0,
                                                   "scael": 2}})
    with pytest.raises(UserError, match="no direction for layer 5"):
        intervention(model, SteerConfig(direction=str(f), layer=0, scale=1.0, source_layer=5))


def test_random_like_matches_norm_and_is_seeded():
    v = torch.arange(8.0)
    r1, r2, r3 = random_like(v, 0), random_like(v, 0), random_like(v, 1)
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    assert float(r1.norm()) == pytest.approx(float(v.norm()), rel=1e-5)
    assert abs(float(r1 @ v) / float(v.norm() ** 2)) < 0.99  # a different direction
