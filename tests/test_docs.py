"""Every `emergent ...` command in README.md and docs/*.md is checked (issue 14, point 7).

* A command line of a code block parses with the real parser (`emergent.cli.build_parser`: the
  subcommand, its flags, `key=value` overrides where the command takes them), and every config
  it names resolves (a file, or a shipped name through `emergent.core.config.resolve_config`);
  every `configs/...` path it names exists; every fetched-data path names a file of a manifest.
* A usage synopsis (`[--flag X]`, `a|b`) and an inline `emergent ...` span name an existing
  subcommand and only its flags.
* The cheap commands are run in-process as written (RUN), in a scratch folder whose `configs`
  is the checkout's, with the paper's files fetched from $EMERGENT_UPSTREAM where they need them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from emergent.cli import build_parser, main
from emergent.core.config import TrainRecipeConfig, load_config, resolve_config
from emergent.pipeline.experiment import load_experiment

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```\w*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(emergent [^`]+)`")
SEPARATORS = ("&&", "||", ";", "|")
# the config argument of each command, and the kinds its loader looks a shipped name up in
CONFIG_ARGS = {("run",): ("config", ("experiments", "toyworld")),
               ("train",): ("config", ("train", "arms")),
               ("estimate",): ("config", ("experiments", "train", "arms", "rmbias")),
               ("rmbias", "run"): ("config", ("rmbias",)),
               ("judge",): ("judge", ("judges", "experiments", "rmbias"))}
# fetched-data folders -> the manifest listing their files
FETCHED = {"datasets/insecure_code/": "insecure_code.yaml", "evals/upstream/": "evals.yaml"}
# run in-process, in this order (a later line may use what an earlier one wrote)
RUN = ["emergent configs list",
       "emergent configs copy experiments/qwen25_coder_7b my/",
       "emergent run my/qwen25_coder_7b.yaml --dry-run",
       "emergent estimate configs/experiments/qwen25_coder_7b.yaml",
       "emergent run configs/experiments/qwen25_coder_7b.yaml --dry-run",
       "emergent run configs/experiments/smollm2_135m_cpu.yaml --dry-run",
       "emergent rmbias list -v",
       "emergent rmbias run configs/rmbias/llama31_8b_qlora_24gb.yaml --dry-run"]


def command_lines(text: str) -> list[list[str]]:
    """The argument lists of every `emergent` command in the fenced code blocks of `text`
    (continuation lines joined, comments dropped, `a && b` split, `VAR=x` prefixes dropped)."""
    out = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if re.search(r"(^|[\s/])emergent\s", line):  # not a tree or an output listing
                out += emergent_commands(shlex.split(line, comments=True))
    return out


def emergent_commands(tokens: list[str]) -> list[list[str]]:
    out, seg = [], []
    for tok in tokens + ["&&"]:
        if tok not in SEPARATORS:
            seg.append(tok)
            continue
        while seg and re.match(r"^[A-Z_][A-Z0-9_]*=", seg[0]):
            seg.pop(0)
        if seg and (seg[0] == "emergent" or seg[0].endswith("/emergent")):
            out.append(seg[1:])
        seg = []
    return out


def all_commands() -> list[tuple[str, list[str], bool]]:
    """(where, arguments, is_inline) of every command in README.md and docs/*.md."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found += [(doc.name, args, False) for args in command_lines(text)]
        found += [(doc.name, shlex.split(s)[1:], True) for s in INLINE.findall(FENCE.sub("", text))]
    return found


def subparser_of(parser: argparse.ArgumentParser, args: list[str]):
    """(the subcommand path, its parser) named by the leading words of `args`."""
    path = []
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not args[len(path):] or args[len(path)] not in subs[0].choices:
            return tuple(path), parser
        parser = subs[0].choices[args[len(path)]]
        path.append(args[len(path)])


def check_names(parser, args: list[str]) -> str | None:
    """A problem with a synopsis: no subcommand, or a flag the subcommand does not have.
    Leading options of `emergent` itself (-q, -v) are skipped; `emergent -q ...` names any
    command."""
    top = {s for a in parser._actions for s in a.option_strings}
    while args and args[0] in top:
        args = args[1:]
    if args in ([], ["..."]):
        return None
    path, sub = subparser_of(parser, args)
    if not path:
        return f"no such subcommand: {args[:1]}"
    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions) and \
            len(args) > len(path) and not args[len(path)].startswith("-"):
        return f"no subcommand {args[len(path)]!r} of {' '.join(path)}"
    flags = top | {s for a in sub._actions for s in a.option_strings}  # -q/-v go anywhere
    for tok in args[len(path):]:
        flag = tok.strip("[]").split("=")[0].rstrip(".")
        if re.fullmatch(r"--?[a-z][a-z0-9-]*", flag) and flag not in flags:
            return f"{' '.join(path)} has no flag {flag}"
    return None


def parse(parser, args: list[str]) -> argparse.Namespace:
    """Parse as `emergent.cli.main` does (key=value may follow options); SystemExit on error."""
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            ns, extra = parser.parse_known_args(args)
        except SystemExit:
            raise AssertionError(err.getvalue().strip().splitlines()[-1]) from None
    top = {s for a in parser._actions for s in a.option_strings}
    extra = [x for x in extra if x not in top]  # -q/-v after the command: main takes them
    bad = [x for x in extra if x.startswith("-") or "=" not in x]
    assert not extra or (hasattr(ns, "overrides") and not bad), f"unrecognized: {extra}"
    return ns


def is_placeholder(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_./]*", value)) or value.startswith("my/")


def manifest_files(name: str) -> set[str]:
    data = yaml.safe_load((REPO / "src/emergent/manifests" / name).read_text())
    return {f["file"] for f in data["files"]}


def check_paths(path: tuple, ns: argparse.Namespace, args: list[str]) -> None:
    if path in CONFIG_ARGS:
        attr, kinds = CONFIG_ARGS[path]
        value = getattr(ns, attr, None)
        if value and not is_placeholder(value):
            resolve_config(value, kinds)  # a one-line UserError when it does not exist
            overrides = list(getattr(ns, "overrides", None) or [])
            if path == ("run",) and overrides:  # the keys exist and take these types
                load_experiment(value, overrides)
            elif path == ("train",) and overrides:
                load_config(value, TrainRecipeConfig, overrides)
    for tok in args:
        if tok.startswith("configs/"):
            assert (REPO / tok).exists(), f"{tok} does not exist"
        for folder, manifest in FETCHED.items():
            if tok.startswith(folder):
                names = re.sub(r"\{(.*)\}", r"\1", tok[len(folder):]).split(",")
                stem = tok[len(folder):].split("{")[0]
                files = {stem + n if "{" in tok else n for n in names}
                files = {f if f.endswith((".jsonl", ".yaml")) else f + ".jsonl" for f in files}
                assert files <= manifest_files(manifest), f"{tok}: not in {manifest}"


COMMANDS = all_commands()


def test_the_docs_have_commands():
    readme = [c for c in COMMANDS if c[0] == "README.md" and not c[2]]
    assert len(readme) > 30 and ["configs", "list"] in [c[1] for c in readme]
    assert all(shlex.split(c)[1:] in [a for _, a, _ in COMMANDS] for c in RUN)


@pytest.mark.parametrize("where,args,inline", COMMANDS,
                         ids=[f"{w}:{' '.join(a)[:60]}" for w, a, _ in COMMANDS])
def test_command_parses_and_names_existing_files(where, args, inline):
    parser = build_parser()
    synopsis = any(ch in tok for tok in args for ch in "[]|") or "..." in args
    problem = check_names(parser, args)
    assert problem is None, f"{where}: emergent {' '.join(args)}: {problem}"
    if synopsis or (inline and not _parses(parser, args)):
        return  # a usage line or a mention of a command: the names are what can be checked
    if " ".join(["emergent", *args]) in RUN:
        return  # run below
    path, _ = subparser_of(parser, args)
    check_paths(path, parse(parser, args), args)


def _parses(parser, args) -> bool:
    try:
        parse(parser, args)
    except AssertionError:
        return False
    return True


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, upstream_dir):
    """A working folder whose configs/ is the checkout's, with the paper's files and the
    reward-model-bias prompts fetched into a data root there."""
    root = tmp_path_factory.mktemp("docs")
    (root / "configs").symlink_to(REPO / "configs")
    data = root / "data"
    old = {k: os.environ.get(k) for k in ("EMERGENT_DATA_DIR",)}
    os.environ["EMERGENT_DATA_DIR"] = str(data)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["data", "fetch", "--from", str(upstream_dir)]) == 0
    yield root
    for k, v in old.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_cheap_commands_run_as_written(scratch, monkeypatch, capsys):
    monkeypatch.chdir(scratch)
    for line in RUN:
        code = main(shlex.split(line)[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{line}: {err.strip()}"
        if line.endswith("--dry-run") and line.startswith("emergent run"):
            plan = json.loads(out)
            assert plan["training_steps"] > 0 and plan["answers"] > 0, line
    assert (scratch / "my/qwen25_coder_7b.yaml").is_file()
    assert not (scratch / "runs").exists()  # a dry run writes nothing
