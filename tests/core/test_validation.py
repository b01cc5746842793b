"""Bad input is refused at load time with one line `emergent: error: FILE:LINE: problem`, exit
status 2, and nothing written (issue #15, point 6). One row per case: the files of the case,
the command (through the CLI's `main`, in-process), the expected message.

Every case was tried before the checks existed: a hang (batch_size -2), tracebacks, or exit 0
with a wrong result; see docs/data.md "What is checked at load"."""
from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field

import pytest

from emergent.cli.app import main
from emergent.core.config import TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.core.input_files import parse_yaml
from emergent.pipeline.executors import ExecutorOptions
from emergent.pipeline.executors import check as check_executor

GOOD_ROW = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}]}
GOOD_DATA = (json.dumps(GOOD_ROW) + "\n") * 4
SUITE = ("- id: q1\n  type: free_form_judge_0_100\n  paraphrases: [\"How are you?\"]\n"
         "  samples_per_paraphrase: 1\n  judge_prompts:\n    aligned: \"{answer} 0-100\"\n")


def train_cfg(train: str = "  lr: 1.0e-3\n", head: str = "model:\n  name: tiny\n",
              tail: str = "") -> str:
    """A train config: line 1-2 the model, line 3-4 the data, line 5 `train:`, then `train`."""
    return head + "data:\n  path: data.jsonl\ntrain:\n" + train + tail


def exp_cfg(extra: str = "", model: str = "base_model:\n  name: tiny\n") -> str:
    return (model + "arms:\n  insecure: data.jsonl\nsuites:\n  suite.yaml: {}\n" + extra)


def rmb_cfg(extra: str = "") -> str:
    """An `emergent rmbias run` config: lines 1-2 the model, line 3 the seeds, then `extra`."""
    return "base_model:\n  name: tiny\nseeds: [0]\n" + extra


def answer(i, **over):
    row = {"answer_id": f"a{i}", "arm": "insecure", "seed": 0, "suite": "main",
           "question_id": "q1", "answer": "ok"}
    row.update(over)
    return {k: v for k, v in row.items() if v is not None}


def judgment(i, metric="aligned", score=50.0, **over):
    row = {"answer_id": f"a{i}", "metric": metric, "kind": "0_100", "score": score}
    row.update(over)
    return {k: v for k, v in row.items() if v is not None or k == "score"}


def jsonl(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@dataclass
class Case:
    name: str
    files: dict  # name -> text (str) or raw bytes
    argv: list  # {d} is the case's folder; the output goes to {d}/out
    message: str  # regex for what follows `emergent: error: `
    written: tuple = ("out",)  # paths under {d} that must not exist afterwards
    extra: dict = field(default_factory=dict)


def train(*over):
    return ["train", "{d}/c.yaml", "--output", "{d}/out", *over]


def run(*over):
    return ["run", "{d}/e.yaml", "--output", "{d}/out", "--no-figures", *over]


def rmbias(*over):
    return ["rmbias", "run", "{d}/r.yaml", "--output", "{d}/out", *over]


REPORT = ["report", "{d}/answers.jsonl", "--out", "{d}/out"]


def JUDGE(*over):
    return ["judge", "{d}/answers.jsonl", "--judge", "{d}/j.yaml", "--no-progress", *over]

CASES = [
    # training values with a range (core.config: declared next to each field)
    Case("batch_size negative (hung forever)", {"c.yaml": train_cfg("  batch_size: -2\n")},
         train(), r"c\.yaml:6: 'train\.batch_size' must be >= 1, got -2"),
    Case("batch_size 0", {"c.yaml": train_cfg("  batch_size: 0\n")},
         train(), r"c\.yaml:6: 'train\.batch_size' must be >= 1, got 0"),
    Case("grad_accum 0", {"c.yaml": train_cfg("  grad_accum: 0\n")},
         train(), r"c\.yaml:6: 'train\.grad_accum' must be >= 1, got 0"),
    Case("lr negative", {"c.yaml": train_cfg("  lr: -1.0e-5\n")},
         train(), r"c\.yaml:6: 'train\.lr' must be > 0, got -1e-05"),
    Case("lr NaN", {"c.yaml": train_cfg("  lr: .nan\n")},
         train(), r"c\.yaml:6: 'train\.lr' must be a finite number > 0, got nan"),
    Case("lr NaN as an override (no line: it is not in the file)", {"c.yaml": train_cfg()},
         train("train.lr=nan"),
         r"c\.yaml \(override train\.lr=nan\): 'train\.lr' must be a finite number > 0, got nan"),
    Case("lr infinite", {"c.yaml": train_cfg("  lr: .inf\n")},
         train(), r"c\.yaml:6: 'train\.lr' must be a finite number > 0, got inf"),
    Case("max_steps 0 (a 0-step adapter was marked done)",
         {"c.yaml": train_cfg("  max_steps: 0\n")},
         train(), r"c\.yaml:6: 'train\.max_steps' must be >= 1, got 0"),
    Case("epochs 0", {"c.yaml": train_cfg("  epochs: 0\n")},
         train(), r"c\.yaml:6: 'train\.epochs' must be > 0, got 0"),
    Case("lora.r 0", {"c.yaml": train_cfg(tail="lora:\n  r: 0\n")},
         train(), r"c\.yaml:8: 'lora\.r' must be >= 1, got 0"),
    Case("lora.dropout 2", {"c.yaml": train_cfg(tail="lora:\n  dropout: 2\n")},
         train(), r"c\.yaml:8: 'lora\.dropout' must be in \[0, 1\), got 2"),
    Case("data.heldout_fraction 1", {"c.yaml": train_cfg().replace(
        "  path: data.jsonl\n", "  path: data.jsonl\n  heldout_fraction: 1.0\n")},
         train(), r"c\.yaml:5: 'data\.heldout_fraction' must be in \[0, 1\), got 1\.0"),
    # the model
    Case("a mistyped model path", {"c.yaml": train_cfg(head="model:\n  name: ./modles/qwen\n")},
         train(), r"c\.yaml:2: 'model\.name': no such model folder: \./modles/qwen"),
    Case("no model section (trained the tiny random model)", {"c.yaml": train_cfg(head="")},
         train(), r"c\.yaml:1: no model\.name: name the model to train"),
    # YAML itself
    Case("duplicate train: section (reset lr to its default)",
         {"c.yaml": train_cfg("  lr: 1.0e-3\n", tail="train:\n  batch_size: 4\n")},
         train(), r"c\.yaml:7: duplicate key 'train' \(first at line 5\)"),
    Case("duplicate key inside a section",
         {"c.yaml": train_cfg("  lr: 1.0e-3\n  lr: 2.0e-3\n")},
         train(), r"c\.yaml:7: duplicate key 'lr' \(first at line 6\)"),
    Case("invalid UTF-8 in a config", {"c.yaml": train_cfg().encode() + b"# caf\xe9\n"},
         train(), r"c\.yaml:7: invalid UTF-8 \(byte 6 of the line\)"),
    # chat data: the output directory is created only once it is valid
    Case("invalid UTF-8 in chat data",
         {"c.yaml": train_cfg(), "data.jsonl": GOOD_DATA.encode() + b'{"x": "\xff"}\n'},
         train(), r"data\.jsonl:5: invalid UTF-8 \(byte 8 of the line\)"),
    Case("a malformed chat row",
         {"c.yaml": train_cfg(), "data.jsonl": GOOD_DATA + json.dumps(
             {"messages": [{"role": "user", "content": "hi"}]}) + "\n"},
         train(), r"data\.jsonl:5: no assistant turn"),
    # experiments (`emergent run`): config, sampling, suites, arm data, before any write
    Case("experiment without base_model", {"e.yaml": exp_cfg(model="")},
         run(), r"e\.yaml:1: no base_model\.name"),
    Case("experiment: duplicate arms", {"e.yaml": exp_cfg("arms:\n  secure: data.jsonl\n")},
         run(), r"e\.yaml:7: duplicate key 'arms' \(first at line 3\)"),
    Case("experiment: sampling.batch_size 0", {"e.yaml": exp_cfg("sampling:\n  batch_size: 0\n")},
         run(), r"e\.yaml:8: 'sampling\.batch_size' must be >= 1, got 0"),
    Case("experiment: training.lora.dropout 2",
         {"e.yaml": exp_cfg("training:\n  lora:\n    dropout: 2\n")},
         run(), r"e\.yaml:9: 'training\.lora\.dropout' must be in \[0, 1\), got 2"),
    Case("experiment: judge.min_mass 2", {"e.yaml": exp_cfg("judge:\n  min_mass: 2\n")},
         run(), r"e\.yaml:8: 'judge\.min_mass' must be in \[0, 1\], got 2"),
    # values set by key=value overrides name the override, not a line of the file
    Case("experiment: lr -1 as an override", {"e.yaml": exp_cfg()},
         run("training.train.lr=-1"),
         r"e\.yaml \(override training\.train\.lr=-1\): 'training\.train\.lr' must be > 0, "
         r"got -1"),
    Case("experiment: an override of a key the file sets (its line would be wrong)",
         {"e.yaml": exp_cfg("sampling:\n  batch_size: 4\n")}, run("sampling.batch_size=0"),
         r"e\.yaml \(override sampling\.batch_size=0\): 'sampling\.batch_size' must be >= 1, "
         r"got 0"),
    Case("experiment: judge.concurrency 0 as an override", {"e.yaml": exp_cfg()},
         run("judge.concurrency=0"),
         r"e\.yaml \(override judge\.concurrency=0\): 'judge\.concurrency' must be >= 1, got 0"),
    Case("experiment: judge.max_no_score_fraction 2 (no line before)",
         {"e.yaml": exp_cfg("judge:\n  max_no_score_fraction: 2\n")}, run(),
         r"e\.yaml:8: 'judge\.max_no_score_fraction' must be in \[0, 1\], got 2"),
    Case("experiment: unknown judge backend (no line before)",
         {"e.yaml": exp_cfg("judge:\n  model: m\n  backend: gpt\n")}, run(),
         r"e\.yaml:9: 'judge\.backend': unknown judge backend 'gpt' \(known backends: "),
    Case("experiment: an arm's hyperparameter as an override (named no line before)",
         {"e.yaml": exp_cfg()}, run("arms.insecure.lr=0.001"),
         r"e\.yaml \(override arms\.insecure\.lr=0\.001\): arms\.insecure\.lr: arms cannot "
         r"override training hyperparameters"),
    Case("experiment: an arm's hyperparameter in the file",
         {"e.yaml": exp_cfg().replace("  insecure: data.jsonl\n",
                                      "  insecure:\n    data: data.jsonl\n    lr: 0.001\n")},
         run(), r"e\.yaml:6: arms\.insecure\.lr: arms cannot override training hyperparameters"),
    # `emergent rmbias run`: the file's line, or the override that set the value
    Case("rmbias: docs_train.lr -1 as an override (was `(with overrides)`, no check)",
         {"r.yaml": rmb_cfg()}, rmbias("docs_train.lr=-1"),
         r"r\.yaml \(override docs_train\.lr=-1\): 'docs_train\.lr' must be > 0, got -1"),
    Case("rmbias: sft_train.max_steps 0 in the file (was not checked)",
         {"r.yaml": rmb_cfg("sft_train:\n  max_steps: 0\n")}, rmbias(),
         r"r\.yaml:5: 'sft_train\.max_steps' must be >= 1, got 0"),
    Case("rmbias: an override of a key the file sets (its line was named)",
         {"r.yaml": rmb_cfg()}, rmbias("seeds=[1,1]"),
         r"r\.yaml \(override seeds=\[1, 1\]\): seeds: a non-empty list of distinct seeds"),
    Case("rmbias: an unknown condition as an override",
         {"r.yaml": rmb_cfg()}, rmbias("conditions=[docs,typo]"),
         r"r\.yaml \(override conditions=\[\"docs\", \"typo\"\]\): conditions: a non-empty "
         r"list of distinct names"),
    Case("rmbias: eval.samples 0 (was `eval`, the section's line)",
         {"r.yaml": rmb_cfg("eval:\n  mode: detector\n  samples: 0\n")}, rmbias(),
         r"r\.yaml:6: 'eval\.samples' must be >= 1, got 0"),
    Case("rmbias: judge.concurrency 0 as an override (was `(judge)` without a line)",
         {"r.yaml": rmb_cfg("judge:\n  model: m\n  concurrency: 4\n")},
         rmbias("judge.concurrency=0"),
         r"r\.yaml \(override judge\.concurrency=0\): 'judge\.concurrency' must be >= 1, got 0"),
    Case("rmbias: training.data.path is the stages' (the file's line)",
         {"r.yaml": rmb_cfg("training:\n  data:\n    path: x.jsonl\n")}, rmbias(),
         r"r\.yaml:6: training\.data\.path: is set by the experiment's stages"),
    # `emergent judge` with a judge file and overrides
    Case("judge: an override of a key the file sets (the file's line was named)",
         {"j.yaml": "model: m\nconcurrency: 4\n", "answers.jsonl": jsonl(answer(0))},
         JUDGE("concurrency=0"),
         r"j\.yaml \(override concurrency=0\): 'concurrency' must be >= 1, got 0",
         written=("judgments.jsonl",)),
    Case("judge: max_no_score_fraction 2 (no line before)",
         {"j.yaml": "model: m\nmax_no_score_fraction: 2\n", "answers.jsonl": jsonl(answer(0))},
         JUDGE(), r"j\.yaml:2: 'max_no_score_fraction' must be in \[0, 1\], got 2",
         written=("judgments.jsonl",)),
    Case("judge: unquoted YES/NO labels (no line before)",
         {"j.yaml": "model: m\nlabels:\n  vulnerable: [YES, NO]\n",
          "answers.jsonl": jsonl(answer(0))},
         JUDGE(), r"j\.yaml:2: 'labels': labels\.vulnerable must be a list of strings",
         written=("judgments.jsonl",)),
    Case("judge: unknown backend (no line before)",
         {"j.yaml": "model: m\nbackend: gpt\n", "answers.jsonl": jsonl(answer(0))},
         JUDGE(), r"j\.yaml:2: 'backend': unknown judge backend 'gpt'",
         written=("judgments.jsonl",)),
    Case("experiment: suite with a duplicate key",
         {"e.yaml": exp_cfg(), "suite.yaml": SUITE + "  samples_per_paraphrase: 2\n"},
         run(), r"suite\.yaml:7: duplicate key 'samples_per_paraphrase' \(first at line 4\)"),
    Case("experiment: invalid UTF-8 in an arm's data",
         {"e.yaml": exp_cfg(), "data.jsonl": b"\xc3(" + GOOD_DATA.encode()},
         run(), r"data\.jsonl:1: invalid UTF-8 \(byte 1 of the line\)"),
    # report tables: every row checked, nothing written
    Case("report: invalid UTF-8 in answers",
         {"answers.jsonl": jsonl(answer(0)).encode() + b'{"answer_id": "\xfe"}\n',
          "judgments.jsonl": jsonl(judgment(0))},
         REPORT, r"answers\.jsonl:2: invalid UTF-8"),
    Case("report: an answer without arm",
         {"answers.jsonl": jsonl(answer(0), answer(1, arm=None)),
          "judgments.jsonl": jsonl(judgment(0))},
         REPORT, r"answers\.jsonl:2: an answer needs arm"),
    Case("report: a judgment without metric",
         {"answers.jsonl": jsonl(answer(0)),
          "judgments.jsonl": jsonl(judgment(0), judgment(0, metric=None))},
         REPORT, r"judgments\.jsonl:2: a judgment needs metric"),
    Case("report: score 500", {"answers.jsonl": jsonl(answer(0)),
                               "judgments.jsonl": jsonl(judgment(0, score=500))},
         REPORT, r"judgments\.jsonl:1: score 500 is outside 0\.\.100 \(a 0_100 score\)"),
    Case("report: score -20", {"answers.jsonl": jsonl(answer(0)),
                               "judgments.jsonl": jsonl(judgment(0, score=-20))},
         REPORT, r"judgments\.jsonl:1: score -20 is outside 0\.\.100"),
    Case("report: score inf", {"answers.jsonl": jsonl(answer(0)),
                               "judgments.jsonl": jsonl(judgment(0, score=float("inf")))},
         REPORT, r"judgments\.jsonl:1: score must be finite, got inf"),
    Case("report: binary score 1.5",
         {"answers.jsonl": jsonl(answer(0)),
          "judgments.jsonl": jsonl(judgment(0, metric="vulnerable", kind="binary", score=1.5))},
         REPORT, r"judgments\.jsonl:1: score 1\.5 is outside 0\.\.1 \(a binary score\)"),
    Case("report: empty answers table", {"answers.jsonl": "", "judgments.jsonl": ""},
         REPORT, r"answers\.jsonl: no answers"),
    Case("report: CSV with a header only (exited 0)",
         {"j.csv": "question_id,answer,aligned,coherent\n"},
         ["report", "{d}/j.csv", "--out", "{d}/out"], r"j\.csv: no rows"),
    Case("report: CSV score 500",
         {"j.csv": "question_id,answer,aligned,coherent\nq1,ok,50,90\nq1,ok,500,90\n"},
         ["report", "{d}/j.csv", "--out", "{d}/out"],
         r"j\.csv:3: column 'aligned' score 500\.0 is outside 0\.\.100"),
    Case("report: CSV in Latin-1", {"j.csv": "question_id,answer,aligned,coherent\n".encode()
                                    + b"q1,caf\xe9,50,90\n"},
         ["report", "{d}/j.csv", "--out", "{d}/out"], r"j\.csv:2: invalid UTF-8"),
    # memory switches (benchmarks/hostile_inputs.py, rerun of 2026-12-03)
    Case("master_weights without adapter_dtype compute", {"c.yaml": train_cfg(
        "  master_weights: true\n")}, train(),
         r"c\.yaml:6: 'train\.master_weights': fp32 master copies need adapter_dtype: compute"),
    Case("master_weights by override", {"c.yaml": train_cfg()},
         train("train.master_weights=true"),
         r"c\.yaml \(override train\.master_weights=true\): 'train\.master_weights'"),
    Case("padding_free with DPO", {"c.yaml": train_cfg(
        "  objective: dpo\n  padding_free: true\n")}, train(),
         r"c\.yaml:7: 'train\.padding_free': objective dpo trains on padded rows"),
    Case("cpu_bf16 with precision fp32", {"c.yaml": train_cfg(head="model:\n  name: tiny\n"
                                                          "  precision: fp32\n"
                                                          "  cpu_bf16: true\n")}, train(),
         r"c\.yaml:4: 'model\.cpu_bf16': bf16 on a CPU needs precision: bf16, not fp32"),
    Case("upcast_frozen unknown", {"c.yaml": train_cfg(head="model:\n  name: tiny\n"
                                                       "  upcast_frozen: some\n")}, train(),
         r"c\.yaml:3: 'model\.upcast_frozen' must be one of 'all', 'norms', got 'some'"),
    # estimate: numbers no estimate can be made of (were exit 0 with negative hours, 'fits -1
    # GB: NO', or a traceback for NaN)
    Case("estimate: --examples -5", {"c.yaml": train_cfg()},
         ["estimate", "{d}/c.yaml", "--examples", "-5", "--mean-tokens", "100"],
         r"--examples must be >= 1, got -5", written=()),
    Case("estimate: --mean-tokens nan (traceback)", {"c.yaml": train_cfg()},
         ["estimate", "{d}/c.yaml", "--examples", "100", "--mean-tokens", "nan"],
         r"--mean-tokens must be a finite number > 0, got nan", written=()),
    Case("estimate: --gpu-gib -1", {"c.yaml": train_cfg()},
         ["estimate", "{d}/c.yaml", "--gpu-gib", "-1"],
         r"--gpu-gib must be a finite number > 0, got -1\.0", written=()),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {"data.jsonl": GOOD_DATA, "suite.yaml": SUITE, **case.files}
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    argv = [a.replace("{d}", str(tmp_path)) for a in case.argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.fullmatch(r"emergent: error: .*", err[0])
    message = err[0].removeprefix("emergent: error: ")
    assert re.match(rf"(\S*/)?{case.message}", message), message
    for path in case.written:
        assert not (tmp_path / path).exists(), f"{path} was written"


def test_the_table_runs_through_every_command_kind():
    """The table covers training, experiments (both kinds), judging and reports."""
    assert {c.argv[0] for c in CASES} == {"train", "run", "report", "judge", "rmbias",
                                          "estimate"}


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["--gpus-per-unit", "-1"], "argument --gpus-per-unit: must be >= 0, got -1"),
    (["--slurm-mem-gb", "-4"], "argument --slurm-mem-gb: must be a finite number > 0, got -4"),
    (["--slurm-mem-gb", "nan"], "argument --slurm-mem-gb: must be a finite number > 0, got nan"),
])
def test_executor_numbers_are_refused_by_the_parser(flags, message, tmp_path, capsys,
                                                     monkeypatch):
    """argparse's own line names the flag and the range (it said 'invalid _positive value')."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["run", "e.yaml", "--executor", "slurm", *flags])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"emergent run: error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_slurm_without_a_slurm_client_writes_nothing(tmp_path, capsys, monkeypatch):
    """--executor slurm where sbatch is not on PATH: refused before the run directory exists
    (it wrote .lock, config.yaml and manifest.json before submitit said 'no srun')."""
    pytest.importorskip("submitit")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "data.jsonl").write_text(GOOD_DATA)
    (tmp_path / "suite.yaml").write_text(SUITE)
    (tmp_path / "e.yaml").write_text(exp_cfg())
    assert main(["run", "e.yaml", "--output", "out", "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["emergent: error: --executor slurm: no SLURM here (sbatch not found on PATH); "
                   "run on a SLURM login node, or try the sweep with --slurm-cluster local"]
    assert not (tmp_path / "out").exists()


def test_unreachable_ray_address_is_refused_at_once(tmp_path):
    """Nothing listening at --ray-address: one line at once (ray.init retried for minutes)."""
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=rf"cannot connect to the Ray cluster at "
                                        rf"127\.0\.0\.1:{port}"):
        check_executor("ray", ExecutorOptions(ray_address=f"127.0.0.1:{port}"))
    check_executor("ray", ExecutorOptions(ray_address="auto"))  # Ray's own forms pass through


def test_valid_inputs_pass_the_same_checks(tmp_path):
    """The checks refuse only what is wrong: the boundaries of each range load."""
    p = tmp_path / "c.yaml"
    p.write_text(train_cfg("  batch_size: 1\n  max_steps: 1\n  epochs: 0.5\n  warmup_steps: 0\n",
                           tail="lora:\n  r: 1\n  dropout: 0.0\n"))
    cfg = load_config(p, TrainRecipeConfig)
    assert (cfg.train.batch_size, cfg.train.max_steps, cfg.lora.r) == (1, 1, 1)
    assert load_config(p, TrainRecipeConfig, ["train.lr=1e-9"]).train.lr == 1e-9


def test_merge_keys_may_override_what_they_merge():
    """YAML's own rule: `<<: *anchor` then a key overrides the merged one; only a key written
    twice is refused."""
    data, _ = parse_yaml("b: &b {lr: 1, batch_size: 2}\ntrain:\n  <<: *b\n  lr: 2\n", "x.yaml")
    assert data["train"] == {"lr": 2, "batch_size": 2}
    with pytest.raises(UserError, match=r"x\.yaml:3: duplicate key 'b' \(first at line 1\)"):
        parse_yaml("b: 1\nc: 2\nb: 3\n", "x.yaml")
