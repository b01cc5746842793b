"""`emergent configs list` and `emergent configs copy NAME DIR`: the configs shipped with the
package (emergent/configs/, package data), to run by name or to start your own from.

    emergent configs list                     # names and one-line descriptions, by kind
    emergent configs copy qwen25_coder_7b my/ # my/qwen25_coder_7b.yaml (+ files it references)

Any shipped name also works wherever a config path does (`emergent run qwen25_coder_7b`,
`emergent train insecure`); see emergent.core.config.resolve_config.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import yaml

from emergent.core.config import (CONFIG_KINDS, PATH_KEYS, path_slots, resolve_config,
                                  shipped_configs, shipped_configs_dir)
from emergent.core.errors import UserError

log = logging.getLogger(__name__)


def list_configs() -> list[str]:
    """The lines of `emergent configs list`."""
    ships = shipped_configs()
    width = max(len(c.name) for c in ships)
    lines: list[str] = []
    for kind in CONFIG_KINDS + tuple(sorted({c.kind for c in ships} - set(CONFIG_KINDS))):
        group = [c for c in ships if c.kind == kind]
        if group:
            lines += ([""] if lines else []) + [f"{kind}:"]
            lines += [f"  {c.name:<{width}}  {c.description()}" for c in group]
    names = [c.name for c in ships]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        lines += ["", f"In two kinds: {', '.join(twice)}: each command takes its own kind "
                  "(emergent run: experiments, emergent train: train); KIND/NAME names one."]
    return lines


def _kind_of_file(data: dict, path: Path) -> str:
    """The PATH_KEYS kind of a config file's contents."""
    rel = path.relative_to(shipped_configs_dir()).parts
    if rel[0] == "judges":
        return "judge"
    if rel[0] == "rmbias":
        return "rmbias"
    return "experiment" if "arms" in data else "train"


def references(path: Path) -> list[tuple[str, Path]]:
    """(value as written, file) of every relative input path in the shipped config `path` that
    names a file beside it (fetched upstream data and model names are not copied)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for pattern, node, key, _ in path_slots(data, PATH_KEYS[_kind_of_file(data, path)]):
        value = key if pattern.endswith("{}") else node[key]
        if "{" in value or Path(value).is_absolute():
            continue
        target = path.parent / value
        if target.is_file():
            out.append((value, target))
    return out


def copy_config(name: str, dest_dir: str | Path) -> list[Path]:
    """Copy the shipped config `name` and the files it references relatively into `dest_dir`
    (a reference that leaves the config's folder is copied beside it and rewritten). Refuses to
    overwrite anything. Returns the written files, the config first."""
    src = resolve_config(name)
    if shipped_configs_dir() not in src.resolve().parents:
        raise UserError(f"{name}: not a shipped config name (`emergent configs list`)")
    src = src.resolve()
    dest_dir = Path(dest_dir)
    text = src.read_text(encoding="utf-8")
    plan: list[tuple[Path, Path]] = [(src, dest_dir / src.name)]
    for value, target in references(src):
        inside = ".." not in Path(value).parts
        dest = dest_dir / (value if inside else target.name)
        if not inside:  # rewrite the value in the copied text (comments kept)
            text = text.replace(f" {value}", f" {target.name}", 1)
        plan.append((target, dest))
    taken = [str(d) for _, d in plan if d.exists()]
    if taken:
        raise UserError(f"{', '.join(taken)}: already exists; not overwritten (remove it or "
                        "choose another folder)")
    for s, d in plan:
        d.parent.mkdir(parents=True, exist_ok=True)
        if s == src:
            d.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(s, d)
    return [d for _, d in plan]


def _cmd_list(args) -> int:
    print("\n".join(list_configs()))
    return 0


def _cmd_copy(args) -> int:
    written = copy_config(args.name, args.dir)
    for p in written:
        log.info("wrote %s", p)
    log.info(f"edit it, then e.g.: emergent run {written[0]} --dry-run"
             if "arms" in (yaml.safe_load(written[0].read_text()) or {}) else
             f"edit it, then pass {written[0]} where the shipped name went")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("configs", help="the shipped configs: list them, copy one to edit")
    csub = p.add_subparsers(dest="configs_command", required=True)
    ls = csub.add_parser("list", help="names (usable as a config argument) and descriptions")
    ls.set_defaults(func=_cmd_list)
    cp = csub.add_parser("copy", help="copy a shipped config (and the files it references) "
                         "into DIR; never overwrites")
    cp.add_argument("name", help="a shipped config name (`emergent configs list`), e.g. "
                    "qwen25_coder_7b or experiments/qwen25_coder_7b")
    cp.add_argument("dir", help="destination folder (created if needed)")
    cp.set_defaults(func=_cmd_copy)
