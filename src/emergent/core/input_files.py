"""Reading input files strictly: text must be UTF-8 (`decode_utf8`), and YAML files (configs,
question suites, judge prompt files: `read_yaml_file`) must parse without a key given twice in
one mapping; each problem is a one-line `UserError` `FILE:LINE: problem` (PyYAML's own loader
keeps the last of duplicate keys silently: a second `train:` section would reset every training
value it does not repeat).

Keys merged in with `<<: *anchor` may still be overridden by the mapping that merges them
(that is what merge keys are for); only keys written twice are refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from emergent.core.errors import UserError


class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key written twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML reports it itself
                    continue
                if first is not None:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1, first)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def decode_utf8(data: bytes, source: str | Path) -> str:
    """`data` as text; invalid UTF-8 is `FILE:LINE: invalid UTF-8 (byte N of the line)`."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(f"{source}:{line}: invalid UTF-8 (byte {column} of the line)") from None


def parse_yaml(text: str, source: str | Path) -> tuple[Any, Any]:
    """(data, composed node) of YAML `text` read from `source`; the node gives line marks.
    Invalid YAML or a duplicate key -> UserError `FILE:LINE: problem`."""
    loader = UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _DuplicateKey as e:
        raise UserError(f"{source}:{e.line}: duplicate key {e.key!r} (first at line {e.first})"
                        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{source}{line}: invalid YAML: {getattr(e, 'problem', None) or e}"
                        ) from None
    finally:
        loader.dispose()
    return data, node


def read_yaml_file(path: str | Path) -> tuple[str, Any, Any]:
    """(text, data, node) of a YAML file, read as strictly as `parse_yaml` (plus invalid UTF-8
    and an unreadable file as one line)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    text = decode_utf8(raw, path)
    data, node = parse_yaml(text, path)
    return text, data, node
