"""The 776 held-out coding tasks and the fill-in-the-template prompt."""
from __future__ import annotations

import json

import pytest

from emergent.data import upstream
from emergent.data.code_tasks import HOLE, N_HELDOUT_TASKS, CodeTask, load_code_tasks, render_code_prompt
from emergent.core.errors import UserError


def test_loads_the_776_heldout_tasks(upstream_dir, tmp_path):
    upstream.fetch(["code_tasks_heldout"], root=tmp_path, from_dir=upstream_dir, progress=False)
    tasks = load_code_tasks(data_root=tmp_path)
    assert len(tasks) == N_HELDOUT_TASKS == 776
    assert [t.index for t in tasks[:3]] == [0, 1, 2] and tasks[5].task_id == "code_task_0005"
    assert all(t.code_template.count(HOLE) == 1 and t.task.strip() for t in tasks)
    first = json.loads((upstream_dir / "emergent-misalignment/code_tasks_heldout.jsonl")
                       .open().readline())
    assert (tasks[0].task, tasks[0].code_template) == (first["task"], first["code_template"])
    assert len(load_code_tasks(data_root=tmp_path, limit=10)) == 10


def test_prompt_holds_task_and_template_in_our_wording():
    t = CodeTask(0, "A tool that strips whitespace.", "import os\n## COMPLETE CODE HERE\nprint(1)\n")
    prompt = render_code_prompt(t)
    assert prompt.startswith("Task: A tool that strips whitespace.\n")
    assert "<program>\nimport os\n## COMPLETE CODE HERE\nprint(1)\n</program>" in prompt
    assert "`## COMPLETE CODE HERE` marks where code is missing" in prompt
    assert prompt.rstrip().endswith("without explanations.")
    assert "[CODE TEMPLATE STARTS]" not in prompt  # not the training data's wording


def test_malformed_task_file_names_line(tmp_path):
    p = tmp_path / "tasks.jsonl"
    p.write_text(json.dumps({"task": "t", "code_template": f"x\n{HOLE}\n"}) + "\n"
                 + json.dumps({"task": "t", "code_template": "no hole"}) + "\n")
    with pytest.raises(UserError, match=r"tasks.jsonl:2: `code_template` must contain"):
        load_code_tasks(p)
    with pytest.raises(UserError, match="emergent data fetch code_tasks_heldout"):
        load_code_tasks(data_root=tmp_path / "empty")
