"""`emergent demo` runs its worlds in parallel worker processes (`--jobs`): the same answers,
judgments and report as one after the other, each world's output in OUT/logs/<world>.log."""
from __future__ import annotations

import json

import pytest

from emergent.core.errors import UserError

WORLDS = (("main", "toyworld.yaml"), ("decoupled", "toyworld_decoupled.yaml"))


def _answers(run_dir):
    rows = [json.loads(x) for x in (run_dir / "answers.jsonl").read_text().splitlines()]
    return sorted((r["arm"], r["seed"], r["question_id"], r.get("paraphrase_index"),
                   r.get("sample_index"), r["answer"]) for r in rows)


def test_parallel_worlds_give_the_same_results_as_sequential(tmp_path):
    from emergent.toyworld.demo import Scale, run_demo

    scale = Scale(n_arm=64, n_probe=4, seeds=[0], noncode_samples=1, code_questions=1)
    par = run_demo(tmp_path / "par", scale=scale, figures=False, progress=False, worlds=WORLDS,
                   jobs=2)
    seq = run_demo(tmp_path / "seq", scale=scale, figures=False, progress=False, worlds=WORLDS,
                   jobs=1)
    assert par["parallel"] == {"jobs": 2, "torch_threads_each": par["parallel"]["cores"] // 2
                               or 1, "cores": par["parallel"]["cores"]}
    assert seq["parallel"]["jobs"] == 1
    assert list(par["worlds"]) == ["main", "decoupled"]  # the configs' order, not finishing order
    for name in ("main", "decoupled"):
        assert par["worlds"][name]["arms"] == seq["worlds"][name]["arms"]
        assert _answers(tmp_path / "par" / name) == _answers(tmp_path / "seq" / name)
        log = (tmp_path / "par" / "logs" / f"{name}.log").read_text()
        assert f"world {name}, " in log and "torch thread" in log
    assert not (tmp_path / "seq" / "logs").exists()
    timings = json.loads((tmp_path / "par" / "demo.json").read_text())["timings"]
    assert set(timings) == {"main: arms + sampling + judging + metrics",
                            "decoupled: arms + sampling + judging + metrics", "total"}


def test_parallel_worker_errors_name_the_world_and_its_log(tmp_path):
    from emergent.toyworld.demo import Scale, run_demo

    bad = tmp_path / "nosuch"
    with pytest.raises(UserError, match=r"world decoupled: .*log: .*decoupled\.log"):
        run_demo(tmp_path / "out", scale=Scale(n_arm=64, n_probe=4, seeds=[0]), figures=False,
                 progress=False, worlds=WORLDS, bases={"decoupled": str(bad)}, jobs=2)


def test_demo_cli_checks_jobs_and_recipe_flags(tmp_path, capsys):
    from emergent.cli import main
    assert main(["demo", "--output", str(tmp_path), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert main(["demo", "--output", str(tmp_path), "--pretrain-recipe", "x.yaml"]) == 2
    assert "--from-scratch" in capsys.readouterr().err
