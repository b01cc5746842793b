"""Names used as path parts stay inside the run directory: an arm named `../../../x`, `a/b`,
`..` or `.hidden` is refused at config load with one `FILE:LINE: arms.NAME: ...` line and
nothing written; `RunDir.arm_dir` refuses them too (belt and braces)."""
from __future__ import annotations

import json

import pytest

from emergent.core.config import path_name_problem
from emergent.core.errors import UserError
from emergent.core.rundir import RunDir
from emergent.pipeline.experiment import load_experiment

BAD = ["../../../x", "a/b", "..", ".hidden", "a..b", "a\\b", "a b", "-x", "/abs", "x/../y", "é"]
GOOD = ["insecure", "secure", "a.b-c_1", "7", "Educational"]


def files_under(root):
    """Every file and folder under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", BAD)
def test_a_bad_arm_name_is_refused_with_its_line_and_nothing_is_written(tmp_path, name):
    out = tmp_path / "runs" / "exp"
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: exp\n"
                   "arms:\n"
                   "  insecure: data.jsonl\n"
                   f"  {json.dumps(name)}: data.jsonl\n"
                   f"output_dir: {out}\n")
    before = files_under(tmp_path)
    with pytest.raises(UserError) as e:
        load_experiment(cfg)
    msg = str(e.value)
    assert msg.startswith(f"{cfg}:4: arms.{name}: ") and "\n" not in msg
    assert files_under(tmp_path) == before and not out.exists()


def test_the_cli_prints_one_line_and_writes_nothing(tmp_path, capsys):
    from emergent.cli import main

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"arms:\n  ../../../x: data.jsonl\noutput_dir: {tmp_path / 'run'}\n")
    before = files_under(tmp_path.parent)
    assert main(["run", str(cfg)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"emergent: error: {cfg}:2: arms.../../../x: '../../../x' is not a usable "
                   "name: it names a folder of the run, so use letters, digits, '.', '_' and "
                   "'-', starting with a letter or digit"]
    assert files_under(tmp_path.parent) == before


def test_an_override_cannot_bring_a_bad_arm_name_in(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("arms:\n  insecure: data.jsonl\n")
    with pytest.raises(UserError, match=r"arms\.a/b: "):
        load_experiment(cfg, ["arms.a/b.data=x.jsonl"])


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name):
    assert path_name_problem(name) is None


def test_arm_dir_refuses_names_that_leave_the_run(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert rd.arm_dir("insecure", 2) == tmp_path / "run" / "arms" / "insecure" / "seed2"
    for name in BAD + [None, ""]:
        with pytest.raises(UserError, match="arm "):
            rd.arm_dir(name, 0)
    assert not (tmp_path / "run").exists()
