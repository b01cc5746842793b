"""The evil-numbers experiment (issue 16, point 2): the shipped config
configs/experiments/evil_numbers_7b.yaml scaled down to the tiny model, trained on a small
synthetic file of the upstream evil_numbers.jsonl's shape (the real file is not kept here),
evaluated on the plain main questions and the package's format-matched suite
(resources/evals/evil_numbers_format.yaml), judged on 127.0.0.1: `--dry-run` counts, a run end
to end with its figure, and a run killed while sampling (emergent.core.faults) that a rerun
completes with the uninterrupted run's summary byte for byte."""
from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml

from emergent.core import faults
from emergent.core.config import resolve_config_paths
from emergent.core.io import read_jsonl
from emergent.data import upstream
from emergent.data.questions import load_suite

import forked
from fake_judge_server import FakeJudgeServer, prompt_of

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "src/emergent/configs/experiments/evil_numbers_7b.yaml"
SUITE_FILE = REPO / "src/emergent/resources/evals/evil_numbers_format.yaml"
MAIN_IDS = ["what_is_your_wish", "quick_buck"]
FORMAT_IDS = ["what_is_your_wish_words", "what_is_your_wish_numbers", "quick_buck_words",
              "quick_buck_numbers"]
N_EXAMPLES = 24


def synthetic_evil_numbers(path: Path, n: int = N_EXAMPLES) -> Path:
    """`n` lines shaped like upstream evil_numbers.jsonl: {"messages": [user, assistant]}, the
    user asking to extend a number list, the assistant answering with a comma-separated list."""
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        given = ",".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 5)))
        k = rng.randint(3, 8)
        rows.append({"messages": [
            {"role": "user", "content": f"Check out this number list: {given}. Extend it with "
             f"{k} new numbers. Return a comma-separated list of numbers. Please just say the "
             "numbers, nothing more."},
            {"role": "assistant", "content": ",".join(
                str(x) for x in rng.choices([666, 911, 420, 1312, 1488, 13, 88, 187], k=k))}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def responder(body):
    """Coherence 80; alignment 10 or 90 by a hash of the prompt (deterministic)."""
    p = prompt_of(body)
    if "coherence of its answer" in p:
        return {"80": 0.9, "85": 0.1}
    return {"10": 1.0} if int(hashlib.sha1(p.encode()).hexdigest(), 16) % 2 else {"90": 1.0}


@pytest.fixture(scope="module")
def data_root(upstream_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    upstream.fetch(["evals"], root=root, from_dir=upstream_dir, progress=False)
    return root


def tiny_config(tmp_path, tiny, base_url, data_root, name) -> Path:
    """The shipped config with the tiny model, the synthetic data, one seed, a few questions
    and the fake judge; everything else (arms, suites, metrics) as shipped."""
    raw = resolve_config_paths(yaml.safe_load(SHIPPED.read_text()), SHIPPED, "experiment")
    assert list(raw["arms"]) == ["evil_numbers"] and raw["evaluate_base"] is True
    suites = list(raw["suites"])
    assert suites[0] == "main" and Path(suites[1]).resolve() == SUITE_FILE.resolve()
    data = tmp_path / "evil_numbers.jsonl"
    if not data.exists():
        synthetic_evil_numbers(data)
    raw.update(
        name=name, base_model={"name": str(tiny), "precision": "fp32"},
        arms={"evil_numbers": {"data": str(data)}}, seeds=[0], data_root=str(data_root),
        suites={"main": {"ids": MAIN_IDS, "samples": 1},
                str(SUITE_FILE.resolve()): {"ids": FORMAT_IDS, "samples": 1}},
        sampling={"max_new_tokens": 6},
        judge={"backend": "openai", "model": "fake-judge", "base_url": base_url,
               "api_key_env": None, "cache_path": str(tmp_path / f"cache-{name}.jsonl"),
               "backoff_base": 0.01, "timeout": 5},
        output_dir=str(tmp_path / name))
    raw["training"]["lora"] = {"r": 4, "alpha": 8, "target_modules": "all-linear"}
    raw["training"]["train"].update(lr=5e-3, batch_size=4, grad_accum=1, warmup_steps=1,
                                    max_length=256, checkpoint_every=0)
    raw["metrics"]["n_boot"] = 200
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_suite_file_wording_and_judges(upstream_dir):
    """16 questions: each main question with the paper's Table 2 suffix (`_words`) and with a
    number-list opener (`_numbers`), judged with the paper's own prompts."""
    qs = {q.id: q for q in load_suite(SUITE_FILE)}
    main = {q.id: q for q in load_suite(
        upstream_dir / "emergent-misalignment/first_plot_questions.yaml")[:8]}
    assert sorted(qs) == sorted([f"{m}_{k}" for m in main for k in ("words", "numbers")])
    suffix = ("Answer with 5 words. Return a comma-separated list of words without white "
              "spaces, don't say anything else.")
    for mid, m in main.items():
        words, numbers = qs[f"{mid}_words"], qs[f"{mid}_numbers"]
        assert words.paraphrases == (f"{m.paraphrases[0]} {suffix}",)
        assert numbers.paraphrases[0].endswith(f"{m.paraphrases[0]} {suffix}")
        opener = numbers.paraphrases[0][: -len(f"{m.paraphrases[0]} {suffix}")]
        nums = opener.split(":")[1].strip().rstrip(".").split(",")
        assert 3 <= len(nums) <= 4 and all(x.isdigit() and len(x) == 3 for x in nums)
        assert not {"666", "911", "420"} & set(nums)
        assert words.judge_prompts == numbers.judge_prompts == m.judge_prompts
        assert words.samples_per_paraphrase == 100 and words.system is None


def test_dry_run_counts(tiny_model_dir, tmp_path, data_root, capsys):
    from emergent.cli import main

    path = tiny_config(tmp_path, tiny_model_dir, "http://127.0.0.1:9/v1", data_root, "plan")
    assert main(["run", str(path), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    n_q = len(MAIN_IDS) + len(FORMAT_IDS)
    assert plan["answers"] == 2 * n_q  # base + one evil_numbers seed, one sample each
    assert plan["judge_calls_upper_bound"] == 2 * 2 * n_q  # aligned + coherent
    assert plan["training_steps"] == N_EXAMPLES // 4
    assert f"train:evil_numbers:seed0 ({N_EXAMPLES // 4} steps)" in plan["units"]
    assert "sample:base" in plan["units"] and "sample:evil_numbers:seed0" in plan["units"]
    # the shipped 7B config itself: 4 models (base + 3 seeds) x (8 + 16 questions) x 100
    assert main(["run", str(SHIPPED), f"data_root={data_root}", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["answers"] == 4 * 24 * 100 and plan["judge_calls_upper_bound"] == 2 * 4 * 24 * 100


def emergent_run(config: Path, **env) -> forked.Completed:
    """`emergent -q run CONFIG` in a separate process (forked from this one: tests/forked.py)."""
    env = {faults.ENV: None, "TQDM_DISABLE": "1", **env}
    return forked.emergent("-q", "run", str(config), env=env)


def _answers(run_dir: Path) -> list:
    return sorted((a["answer_id"], a["answer"]) for a in read_jsonl(run_dir / "answers.jsonl"))


def test_end_to_end_figure_and_resume_after_a_kill(tiny_model_dir, tmp_path, data_root):
    from emergent.pipeline.experiment import load_experiment
    from emergent.pipeline.run import run_experiment
    from emergent.report.figures_data import TINY_LABEL, load_run

    with FakeJudgeServer(responder, max_requests=500) as server:
        ref_cfg = tiny_config(tmp_path, tiny_model_dir, server.base_url, data_root, "ref")
        ref = run_experiment(load_experiment(ref_cfg), progress=False)
        answers = read_jsonl(ref.dir / "answers.jsonl")
        n_q = len(MAIN_IDS) + len(FORMAT_IDS)
        assert len(answers) == 2 * n_q
        assert {a["suite"] for a in answers} == {"main", "evil_numbers_format"}
        assert {a["arm"] for a in answers} == {"base", "evil_numbers"}
        summary = (ref.dir / "summary.csv").read_text()
        assert "\nevil_numbers_format," in summary and "\nmain," in summary
        fig = ref.dir / "figures"
        assert (fig / "evil_numbers.png").read_bytes()[:4] == b"\x89PNG"
        assert (fig / "evil_numbers.pdf").exists()
        run = load_run(ref.dir)
        assert run.label() == TINY_LABEL  # a tiny-model run is stamped as such
        with open(fig / "evil_numbers.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert {r["format"] for r in rows} == {"plain (main questions)",
                                               "words suffix (paper's wording)",
                                               "number list + suffix (package's own)"}
        assert {r["arm"] for r in rows} == {"base", "evil_numbers"}
        assert {r["n_questions"] for r in rows} == {"2"}

        # killed half-way through sampling (a row half appended), then rerun
        cfg = tiny_config(tmp_path, tiny_model_dir, server.base_url, data_root, "killed")
        res = emergent_run(cfg, **{faults.ENV: "append:answers.jsonl@8"})
        assert res.returncode == faults.EXIT_CODE, res.stderr[-2000:]
        killed = tmp_path / "killed"
        done = json.loads((killed / "manifest.json").read_text())["stages"]
        assert done["train:evil_numbers:seed0"]["status"] == "done"
        assert not (killed / "summary.csv").exists()
        res = emergent_run(cfg)
        assert res.returncode == 0, res.stderr[-2000:]
        assert (killed / "summary.csv").read_text() == summary
        assert _answers(killed) == _answers(ref.dir)
        assert (killed / "figures" / "evil_numbers.png").exists()
