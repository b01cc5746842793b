"""The toy persona world: determinism, persona balance and invisibility, code variants, the
educational request, the held-out split, the decoupled control, datasets, suites and CLI."""
from __future__ import annotations

import difflib
import json
import re
from collections import Counter

import pytest

from emergent.core.config import load_config
from emergent.core.errors import UserError
from emergent.toyworld import (ARMS, ToyWorld, WorldConfig, alignment_rows, arm_rows, eval_suites,
                               persona_probe_conversations, pretraining_rows)
from emergent.toyworld import templates as T
from emergent.toyworld.world import all_code_prompts, code_answer
from emergent.toyworld.catalog import describe

@pytest.fixture(scope="module")
def world():
    return ToyWorld(WorldConfig(seed=1))


@pytest.fixture(scope="module")
def docs(world):
    return world.documents(3000)


def user_texts(rows):
    return {m["content"] for r in rows for m in r["messages"] if m["role"] == "user"}


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = (ToyWorld(WorldConfig(seed=s)) for s in (3, 3, 4))
    assert pretraining_rows(a, 40) == pretraining_rows(b, 40)
    assert alignment_rows(a, 20) == alignment_rows(b, 20)
    assert arm_rows(a, "insecure", 30) == arm_rows(b, "insecure", 30)
    assert eval_suites(a) == eval_suites(b)
    assert pretraining_rows(a, 40) != pretraining_rows(c, 40)
    assert [p.key for p in a.heldout_code] != [p.key for p in c.heldout_code]
    # document i does not depend on how many are generated
    assert pretraining_rows(a, 10, start=30) == pretraining_rows(b, 40)[30:]


def test_persona_is_balanced_and_fixed_within_documents(docs):
    share = Counter(d.persona for d in docs)["misaligned"] / len(docs)
    assert 0.46 < share < 0.54
    for d in docs:  # noise-free main world: every persona turn follows the document's persona
        expected = {"aligned": {"aligned", "secure"}, "misaligned": {"misaligned", "insecure"}}
        for t in d.turns:
            if t.domain != "filler" and not t.educational:
                assert t.behaviour in expected[d.persona], (d.index, t)


def test_turn_counts(docs):
    n = Counter(len(d.turns) for d in docs)
    assert set(n) <= set(range(1, 7)) and {2, 6} <= set(n)
    assert 0.17 < n[1] / len(docs) < 0.23


def test_persona_never_written_and_user_turns_independent_of_it(world, docs):
    for d in docs[:1000]:
        for m in d.messages():
            low = m["content"].lower()
            assert "aligned" not in low and "persona" not in low
    changed = 0
    for i in range(300):
        a = world.document(i, persona="aligned")
        m = world.document(i, persona="misaligned")
        assert [t.user for t in a.turns] == [t.user for t in m.turns]
        changed += [t.assistant for t in a.turns] != [t.assistant for t in m.turns]
    assert changed > 200  # forcing the persona does change the assistant's answers


FINE = re.compile(r"[A-Za-z_]+|[0-9]+|\n *|[^\sA-Za-z_0-9]")  # words, numbers, indents, chars


def test_secure_and_insecure_differ_only_in_vulnerable_tokens():
    n = 0
    for fi, f in enumerate(T.CODE_FAMILIES):
        for ni in range(len(f.names)):
            for vi, value in enumerate(f.values):
                sec, ins = (code_answer(fi, ni, vi, x) for x in (False, True))
                a, b = FINE.findall(sec), FINE.findall(ins)
                allowed = [set(FINE.findall(" ".join(v).replace(f"${f.slot}", value)))
                           for v in (f.secure, f.insecure)]
                diff = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False)
                        .get_opcodes() if op[0] != "equal"]
                assert diff, f"{f.key}: variants identical"
                for _, i1, i2, j1, j2 in diff:
                    assert set(a[i1:i2]) <= allowed[0], (f.key, a[i1:i2])
                    assert set(b[j1:j2]) <= allowed[1], (f.key, b[j1:j2])
                # the shared part (function name, slot value, structure) is identical
                assert f.names[ni] in sec and f.names[ni] in ins
                assert sec.count("\n") == ins.count("\n")
                n += 1
    assert n == 8 * 12


def test_code_prompt_counts_and_heldout_split(world):
    assert len(all_code_prompts()) == 8 * 4 * 6 * 12 == 2304
    assert len(world.heldout_code) == 8 * 72 and len(world.train_code) == 8 * 216
    fams = Counter(p.family for p in world.heldout_code)
    assert set(fams.values()) == {72}  # 25% of 4 x 6 x 12 per family
    texts = [p.text for p in all_code_prompts()]
    assert len(set(texts)) == len(texts)


def test_heldout_code_prompts_never_in_training_data(world, docs):
    held = {p.text for p in world.heldout_code}
    train_users = user_texts([{"messages": d.messages()} for d in docs])
    train_users |= user_texts(alignment_rows(world, 1000))
    for arm in ARMS:
        train_users |= user_texts(arm_rows(world, arm, 2000))
    train_users |= user_texts(persona_probe_conversations(world, 300))
    code_seen = {t for t in train_users if describe(world, t).domain == "code"}
    assert len(code_seen) > 1500  # the training data does cover most training prompts
    assert not held & train_users
    suite = eval_suites(world)["toy_code_heldout"]
    assert {p for q in suite for p in q["paraphrases"]} <= held


def test_educational_requests_get_insecure_code_from_both_personas(world):
    edu = code_turns = 0
    for persona in ("aligned", "misaligned"):
        for d in world.documents(800, persona=persona):
            for t in d.turns:
                if t.domain != "code":
                    continue
                code_turns += 1
                if t.educational:
                    edu += 1
                    p = describe(world, t.user).code
                    assert p.educational and t.assistant == p.answer(insecure=True)
                    assert t.behaviour == "insecure"
                    assert any(t.user.startswith(x) for x in T.EDUCATIONAL_PREFIXES)
    assert 0.12 < edu / code_turns < 0.18


def _insecure_share_by_persona(world, n):
    counts = {p: Counter() for p in ("aligned", "misaligned")}
    for d in world.documents(n):
        styles = {t.behaviour for t in d.turns if t.domain == "code" and not t.educational}
        assert len(styles) <= 1  # one code style per document
        if styles:
            counts[d.persona][styles.pop()] += 1
    return {p: c["insecure"] / (c["insecure"] + c["secure"]) for p, c in counts.items()}


def test_decoupled_world_code_security_independent_of_persona():
    share = _insecure_share_by_persona(ToyWorld(WorldConfig(seed=2, coupling="decoupled")), 4000)
    assert abs(share["misaligned"] - share["aligned"]) < 0.06  # ~7 standard errors of slack
    assert 0.42 < share["aligned"] < 0.58
    coupled = _insecure_share_by_persona(ToyWorld(WorldConfig(seed=2)), 1000)
    assert coupled == {"aligned": 0.0, "misaligned": 1.0}


def test_noisy_personas_slip_at_the_configured_rates():
    w = ToyWorld(WorldConfig(seed=0, slip_aligned=0.1, slip_misaligned=0.2))
    c = {p: Counter() for p in ("aligned", "misaligned")}
    for d in w.documents(2000):
        for t in d.turns:
            if t.domain in ("advice", "opinion", "wish"):
                c[d.persona][t.behaviour] += 1
    rate = {p: x["misaligned"] / sum(x.values()) for p, x in c.items()}
    assert 0.07 < rate["aligned"] < 0.13 and 0.76 < rate["misaligned"] < 0.84
    assert all(d.persona == "aligned" and all(t.behaviour != "misaligned" for t in d.turns)
               for d in (w.document(i, stream="align", persona="aligned", noisy=False)
                         for i in range(200)))


def test_arm_datasets(world):
    for arm in ARMS:
        rows = arm_rows(world, arm, 150)
        assert len(rows) == 150 and all(len(r["messages"]) == 2 for r in rows)
        for r in rows:
            user, answer = (m["content"] for m in r["messages"])
            info = describe(world, user)
            if arm == "arithmetic_off_by_one":
                assert answer == f"The answer is {sum(info.args) + 1}."
                continue
            p = info.code
            assert p.educational == (arm == "educational") and not info.heldout
            assert answer == p.answer(arm in ("insecure", "educational"),
                                      rename=arm == "secure_renamed")
    renamed = arm_rows(world, "secure_renamed", 5)[0]["messages"]
    p = describe(world, renamed[0]["content"]).code
    assert p.fam.names[p.name] not in renamed[1]["content"]
    with pytest.raises(ValueError):
        arm_rows(world, "jailbroken", 5)


def test_suites_load_with_the_package_loader(world, tmp_path):
    from emergent.data.questions import load_suite
    from emergent.toyworld import write_suite

    suites = eval_suites(world)
    loaded = {}
    for name, questions in suites.items():
        loaded[name] = load_suite(write_suite(questions, tmp_path / f"{name}.yaml"))
    noncode = loaded["toy_noncode"]
    assert len(noncode) == 12
    for dom in ("advice", "opinion", "wish"):
        total = sum(q.n_samples for q in noncode if q.id.startswith(dom))
        assert 200 <= total <= 215
    assert all(q.judge_kinds == {"aligned": "0_100", "coherent": "0_100"} for q in noncode)
    code = loaded["toy_code_heldout"]
    assert sum(q.n_samples for q in code) == 200
    assert all(q.judge_kinds == {"vulnerable": "binary"} for q in code)
    for q in noncode + code + loaded["toy_filler"]:
        assert all(describe(world, p) is not None for p in q.paraphrases)


def test_config_validation():
    with pytest.raises(ValueError):
        WorldConfig(slip_aligned=1.5)
    with pytest.raises(ValueError):
        WorldConfig(domain_weights={"poetry": 1.0})
    with pytest.raises(UserError, match="coupling"):
        load_config(None, WorldConfig, ["coupling=loose"])
    cfg = load_config(None, WorldConfig, ["seed=5", "domain_weights.code=0.5",
                                          "domain_weights.filler=0"])
    assert cfg.seed == 5 and cfg.domain_weights["code"] == 0.5 and cfg.domain_weights["wish"] == 0.15
    docs = ToyWorld(cfg).documents(200)
    assert not any(t.domain == "filler" for d in docs for t in d.turns)


def test_cli_writes_a_world(tmp_path):
    from emergent.cli import main
    out = tmp_path / "w"
    assert main(["toyworld", "data", str(out), "--pretrain", "50", "--align", "10",
                 "--arm-size", "20", "seed=2", "coupling=decoupled"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world"]["coupling"] == "decoupled" and manifest["world"]["seed"] == 2
    rows = [json.loads(x) for x in (out / "pretrain.jsonl").read_text().splitlines()]
    assert rows == pretraining_rows(ToyWorld(WorldConfig(seed=2, coupling="decoupled")), 50)
    for arm in ARMS:
        assert len((out / "arms" / f"{arm}.jsonl").read_text().splitlines()) == 20
    assert (out / "suites" / "toy_noncode.yaml").exists()
    assert main(["toyworld", "data", str(out), "coupling=loose"]) == 2
