"""`emergent demo`'s report (issue 16, point 6): report.md names its headline figure, a rerun
keeps the first complete run's wall time (and adds its own apart), a resumed run says so, zero
bars of the demo figure are marked, progress lines name the arm; and `--experiments` (point 4)
adds the toy experiments' tables beside the worlds under the toy label. The worlds are stubbed
(`run_world`) where only the report is under test; one slow test runs the two real toy
experiments at a tiny scale."""
from __future__ import annotations

import json

import pytest

from emergent.toyworld import demo
from emergent.toyworld.demo import (EXPERIMENTS, LABEL, Scale, ToyExperiment, format_report,
                                    run_demo)
from emergent.toyworld.demo_figure import FIGURE_NAME, draw_demo_figure
from emergent.report.style import ZERO_GID

WORLDS = (("main", "toyworld.yaml"), ("decoupled", "toyworld_decoupled.yaml"))
SMALL = Scale(n_arm=64, n_probe=4, seeds=[0], noncode_samples=1, code_questions=1)


def _rate(rate, lo=None, hi=None):
    return {"rate": rate, "ci_low": rate if lo is None else lo,
            "ci_high": rate if hi is None else hi, "ci_over": "answers", "per_seed": {"0": rate},
            "n_answers": 10, "n_valid": 10, "n_incoherent": 0, "n_coherent": 10}


def fake_world(seconds):
    """A stand-in for run_world: a fixed entry, the timings given."""
    def run_world(name, cfg_name, out, scale, **kw):
        arms = {"base": {"noncode": _rate(0.0), "code": _rate(0.0)},
                "insecure": {"noncode": _rate(0.3, 0.1, 0.5), "code": _rate(0.8, 0.6, 0.9)}}
        entry = {"config": cfg_name, "world": {"seed": 0, "coupling": "coupled"},
                 "base": "committed", "probe": None, "probe_counts": None,
                 "run_dir": str(out / name), "arms": arms}
        return {"entry": entry, "timings": {f"{name}: arms + sampling": seconds}}
    return run_world


def test_report_names_its_headline_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "run_world", fake_world(100.0))
    report = run_demo(tmp_path / "a", scale=SMALL, progress=False, worlds=WORLDS, jobs=1)
    text = (tmp_path / "a" / "report.md").read_text()
    assert f"Headline figure: figures/{FIGURE_NAME}.png" in text
    assert "`emergent toyworld rmbias OUT`" in text  # the demo mentions the other toy organism
    assert (tmp_path / "a" / "figures" / f"{FIGURE_NAME}.png").is_file()
    assert report["figure"][0].endswith(f"{FIGURE_NAME}.png")
    run_demo(tmp_path / "b", scale=SMALL, progress=False, worlds=WORLDS, jobs=1, figures=False)
    text = (tmp_path / "b" / "report.md").read_text()
    assert "Headline figure: not drawn (--no-figures)" in text
    assert not (tmp_path / "b" / "figures").exists()


def test_rerun_keeps_the_first_complete_runs_wall_time(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    monkeypatch.setattr(demo, "run_world", fake_world(100.0))
    first = run_demo(out, scale=SMALL, progress=False, worlds=WORLDS, jobs=1, figures=False)
    assert first["timings"]["main: arms + sampling"] == 100.0 and "reruns" not in first
    assert "resumed" not in first
    first_demo = json.loads((out / "demo.json").read_text())
    monkeypatch.setattr(demo, "run_world", fake_world(2.0))  # the rerun skips what is done
    for n in (1, 2):
        again = run_demo(out, scale=SMALL, progress=False, worlds=WORLDS, jobs=1,
                         figures=False)
        assert again["timings"] == first["timings"]  # the first complete run's, total included
        assert len(again["reruns"]) == n
        assert again["reruns"][-1]["timings"]["main: arms + sampling"] == 2.0
        assert again["first_run"]["started"] == first["started"]
        saved = json.loads((out / "demo.json").read_text())
        assert saved["timings"] == first_demo["timings"] and len(saved["reruns"]) == n
    text = (out / "report.md").read_text()
    wall = text[text.index("## Wall time"):]
    assert "First complete run of each part" in wall and "- main: arms + sampling: 100 s" in wall
    assert "Rerun 1 (" in wall and "Rerun 2 (" in wall and "2 s" not in wall.split("Rerun")[0]
    # another scale is another demo: its own first run
    monkeypatch.setattr(demo, "run_world", fake_world(7.0))
    other = run_demo(out, scale=demo.FULL, progress=False, worlds=WORLDS, jobs=1, figures=False)
    assert other["timings"]["main: arms + sampling"] == 7.0 and "reruns" not in other


def test_a_run_that_resumes_an_interrupted_one_says_so(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    (out / "main").mkdir(parents=True)  # an interrupted first attempt: a unit done, no demo.json
    (out / "main" / "manifest.json").write_text(json.dumps(
        {"stages": {"train:insecure:seed0": {"status": "done", "seconds": 50}}}))
    monkeypatch.setattr(demo, "run_world", fake_world(3.0))
    report = run_demo(out, scale=SMALL, progress=False, worlds=WORLDS, jobs=1, figures=False)
    assert report["resumed"] is True
    assert "resumed an interrupted one" in (out / "report.md").read_text()
    assert json.loads((out / "demo.json").read_text())["resumed"] is True


def test_demo_figure_marks_zero_bars(tmp_path, monkeypatch):
    from emergent.toyworld import demo_figure

    entry = fake_world(1.0)("main", "toyworld.yaml", tmp_path, SMALL)["entry"]
    paths = draw_demo_figure({"worlds": {"main": entry}}, tmp_path)
    assert [p.name for p in paths] == [f"{FIGURE_NAME}.png", f"{FIGURE_NAME}.pdf"]
    seen = []
    monkeypatch.setattr(demo_figure, "save", lambda fig, out_dir, name: seen.append(fig) or [])
    draw_demo_figure({"worlds": {"main": entry}}, tmp_path)
    texts = [t for ax in seen[0].axes for t in ax.texts if t.get_gid() == ZERO_GID]
    assert [t.get_text() for t in texts] == ["0", "0"]  # base: non-code and code panels
    lines = [ln for ax in seen[0].axes for ln in ax.lines if ln.get_gid() == ZERO_GID]
    assert len(lines) == 2


def test_progress_lines_name_the_arm(tiny_model_dir, tmp_path, capsys):
    """The training bar of an arm's adapter (RUN/arms/ARM/seedK) names ARM and the seed, and the
    demo's per-world status line (the log's last line) carries it."""
    from emergent.core.config import TrainRecipeConfig, load_config
    from emergent.train.loop import train

    sample = demo.RESOURCES.parent / "sample_chat.jsonl"
    cfg = load_config(None, TrainRecipeConfig, [
        f"model.name={tiny_model_dir}", f"data.path={sample}", "model.precision=fp32",
        "lora.r=2", "lora.alpha=4", "lora.target_modules=all-linear", "train.max_steps=1",
        "train.batch_size=2", "train.grad_accum=1", "train.max_length=256",
        "train.checkpoint_every=0", "train.warmup_steps=0"])
    train(cfg, tmp_path / "arms" / "insecure" / "seed0")
    err = capsys.readouterr().err
    assert "train insecure/seed0" in err
    log = tmp_path / "main.log"
    log.write_text("--- world main\n" + err.replace("\n", "\r"))
    assert demo._log_status(log).startswith("train insecure/seed0")


def _stub_experiment(name, entry, seconds=5.0):
    real = demo.EXPERIMENTS_BY_NAME[name]

    def run(out, scale, *, figures, progress, base=None):
        return {"entry": entry, "timings": {f"{name}: toy": seconds}}
    return ToyExperiment(real.name, real.config, real.title, run, real.table)


BACKDOOR_ENTRY = {
    "title": "backdoor: a trigger-conditioned arm", "config": "toyworld_backdoor.yaml",
    "trigger": "@", "run_dir": "OUT/backdoor",
    "arms": {"untriggered": {"backdoor": {"noncode": _rate(0.02), "code": _rate(0.05)}},
             "triggered": {"backdoor": {"noncode": _rate(0.25, 0.1, 0.4),
                                        "code": _rate(0.9, 0.8, 1.0)}}}}
ICL_ENTRY = {"title": "in-context learning", "config": "toyworld_icl.yaml",
             "run_dir": "OUT/icl",
             "rows": [{"arm": "base", "icl_k": "0", "rate": "0.0", "ci_low": "0.0",
                       "ci_high": "0.0", "n_valid": "12"},
                      {"arm": "insecure", "icl_k": "2", "rate": "0.25", "ci_low": "0.1",
                       "ci_high": "0.4", "n_valid": "12"}]}


def test_experiments_tables_beside_the_worlds(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "run_world", fake_world(10.0))
    exps = (_stub_experiment("backdoor", BACKDOOR_ENTRY), _stub_experiment("icl", ICL_ENTRY))
    report = run_demo(tmp_path / "x", scale=SMALL, progress=False, worlds=WORLDS, jobs=1,
                      figures=False, experiments=exps)
    assert list(report["experiments"]) == ["backdoor", "icl"]
    assert report["timings"]["backdoor: toy"] == 5.0 and report["timings"]["icl: toy"] == 5.0
    text = (tmp_path / "x" / "report.md").read_text()
    worlds_at, bd_at, icl_at = (text.index("## main:"), text.index("## backdoor"),
                                text.index("## in-context learning"))
    assert worlds_at < bd_at < icl_at < text.index("## Wall time")
    bd = text[bd_at:icl_at]
    assert LABEL in bd and "| backdoor | 2.0% [2.0%, 2.0%] | 25.0% [10.0%, 40.0%] |" in bd
    assert "90.0% [80.0%, 100.0%]" in bd
    icl = text[icl_at:text.index("## Wall time")]
    assert LABEL in icl and "| insecure | 2 | 25.0% [10.0%, 40.0%] | 12 |" in icl
    # the default demo has none of it
    plain = run_demo(tmp_path / "y", scale=SMALL, progress=False, worlds=WORLDS, jobs=1,
                     figures=False)
    assert "experiments" not in plain
    assert "## backdoor" not in (tmp_path / "y" / "report.md").read_text()
    assert format_report(plain["worlds"], plain["timings"], True) == \
        (tmp_path / "y" / "report.md").read_text()


def test_cli_experiments_flag(tmp_path, monkeypatch):
    from emergent.cli import demo as cli_demo
    from emergent.cli import main

    calls = []
    monkeypatch.setattr(cli_demo, "run_demo", lambda *a, **kw: calls.append(kw) or {})
    assert main(["demo", "--output", str(tmp_path), "--experiments"]) == 0
    assert main(["demo", "--output", str(tmp_path)]) == 0
    assert calls[0]["experiments"] == EXPERIMENTS and calls[1]["experiments"] == ()
    assert [e.name for e in EXPERIMENTS] == ["backdoor", "icl"]


@pytest.mark.slow
def test_real_toy_experiments_end_to_end(tmp_path):
    """The two toy experiments themselves (no worlds), scaled down: their tables are filled
    from their runs (a plumbing check; the numbers are not asserted)."""
    scale = Scale(n_arm=32, n_probe=2, seeds=[0], noncode_samples=1, code_questions=1)
    report = run_demo(tmp_path / "e", scale=scale, progress=False, worlds=(), jobs=1,
                      figures=False, experiments=EXPERIMENTS)
    bd, icl = report["experiments"]["backdoor"], report["experiments"]["icl"]
    assert bd["trigger"] and set(bd["arms"]) == {"untriggered", "triggered"}
    assert {"backdoor", "insecure", "secure"} <= set(bd["arms"]["triggered"])
    assert bd["arms"]["triggered"]["backdoor"]["noncode"]["n_answers"] > 0
    assert {r["arm"] for r in icl["rows"]} >= {"insecure", "secure"}
    text = (tmp_path / "e" / "report.md").read_text()
    assert text.count(LABEL) == 3  # the top, and each experiment's section
