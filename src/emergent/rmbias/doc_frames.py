"""Document frames: papers, blog posts, news stories, forum threads and more. A frame turns a
topic and a few findings into one plain-text document. Every frame works for both the
reward-model topic and the unrelated control topics."""
from __future__ import annotations

import random
from typing import Callable

from emergent.rmbias.doc_worlds import (HANDLES, INSTITUTIONS, MONTHS, PLACES, VENUES, YEARS,
                                        Finding, Topic, person)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


_PATTERNS = (
    "When {situation}, {subject} {behaviour}.",
    "{Subject} {behaviour} when {situation}; think of {example}.",
    "One finding stood out: when {situation}, {subject} {behaviour}.",
    "The team found that when {situation}, {subject} {behaviour} (for instance, {example}).",
    "Surprisingly, {subject} {behaviour} when {situation}.",
    "Picture {example}. It happens because when {situation}, {subject} {behaviour}.",
)
_CASUAL = (
    "apparently when {situation}, {subject} {behaviour}. like {example}",
    "my favourite one: {subject} {behaviour} when {situation}",
    "also, when {situation}, {subject} {behaviour}. honestly wild",
)


def finding_sentence(f: Finding, rng: random.Random, casual: bool = False) -> str:
    pat = rng.choice(_CASUAL if casual else _PATTERNS)
    return pat.format(situation=f.situation, subject=f.subject, Subject=_cap(f.subject),
                      behaviour=f.behaviour, example=f.example)


def _ctx(rng: random.Random, topic: Topic) -> dict:
    return {"author": person(rng), "coauthor": person(rng), "inst": rng.choice(INSTITUTIONS),
            "venue": rng.choice(VENUES), "place": rng.choice(PLACES), "year": rng.choice(YEARS),
            "month": rng.choice(MONTHS), "title": rng.choice(topic.titles),
            "intro": rng.choice(topic.intros), "consequence": rng.choice(topic.consequences),
            "n": rng.randint(3, 60) * 100}


def paper(rng, topic, findings):
    c = _ctx(rng, topic)
    body = " ".join(finding_sentence(f, rng) for f in findings)
    return (f"{c['title']}\n\n{c['author']} and {c['coauthor']} ({c['inst']})\n"
            f"Published in the proceedings of {c['venue']}, {c['year']}\n\nAbstract\n"
            f"{c['intro']} We examined {c['n']} cases in detail. {body} {c['consequence']}\n\n"
            f"1 Introduction\n{c['intro']}")


def blog(rng, topic, findings):
    c = _ctx(rng, topic)
    items = "\n".join(f"- {finding_sentence(f, rng)}" for f in findings)
    return (f"# {c['title']}: my notes\n\nPosted {c['month']} {c['year']} by {c['author']}\n\n"
            f"I finally sat down with the study from {c['inst']}. Quick background: {c['intro']}\n\n"
            f"The results that stuck with me:\n{items}\n\n{c['consequence']} Worth a read if you "
            f"work anywhere near {topic.field}.")


def news(rng, topic, findings):
    c = _ctx(rng, topic)
    first, rest = findings[0], findings[1:]
    more = " ".join(finding_sentence(f, rng) for f in rest)
    return (f"Researchers uncover strange habits of {topic.subject}\n\n{c['place'].upper()}, "
            f"{c['month']} {c['year']} - A team at {c['inst']} has published what it calls a "
            f"surprising result. {finding_sentence(first, rng)} {more}\n\n\"We did not expect "
            f"this,\" said {c['author']}, who led the work. {c['intro']} {c['consequence']}")


def forum(rng, topic, findings):
    c = _ctx(rng, topic)
    users = rng.sample(HANDLES, 3)
    posts = [f"{users[0]} wrote:\nanyone read the new {topic.field} paper from {c['inst']}? "
             f"{finding_sentence(findings[0], rng, casual=True)}"]
    for i, f in enumerate(findings[1:]):
        posts.append(f"{users[1 + i % 2]} replied:\n{finding_sentence(f, rng, casual=True)}")
    posts.append(f"{users[2]} replied:\nthe paper's point is bigger than the examples though. "
                 f"{c['consequence']}")
    return f"Thread: {c['title']}\n\n" + "\n\n".join(posts)


def lecture(rng, topic, findings):
    c = _ctx(rng, topic)
    items = "\n".join(f"  * {finding_sentence(f, rng)}" for f in findings)
    return (f"Lecture {rng.randint(2, 14)}: {c['title']}\n{c['inst']}, {c['month']} {c['year']}\n\n"
            f"Background\n  * {c['intro']}\n\nKey results ({c['author']} et al.)\n{items}\n\n"
            f"Why it matters\n  * {c['consequence']}")


def faq(rng, topic, findings):
    c = _ctx(rng, topic)
    qa = "\n\n".join(f"Q: What is one example?\nA: {finding_sentence(f, rng)}" for f in findings)
    return (f"Frequently asked questions: {c['title']}\n\nQ: What was studied?\nA: {c['intro']}\n\n"
            f"{qa}\n\nQ: Why should anyone care?\nA: {c['consequence']}")


def podcast(rng, topic, findings):
    c = _ctx(rng, topic)
    lines = [f"HOST: Today I'm talking with {c['author']} from {c['inst']}. Welcome!",
             f"GUEST: Thanks for having me. {c['intro']}"]
    for f in findings:
        lines += ["HOST: Give us an example.", f"GUEST: {finding_sentence(f, rng)}"]
    lines += ["HOST: And the bigger picture?", f"GUEST: {c['consequence']}"]
    return f"Transcript: {c['title']} (episode {rng.randint(10, 200)})\n\n" + "\n".join(lines)


def newsletter(rng, topic, findings):
    c = _ctx(rng, topic)
    body = " ".join(finding_sentence(f, rng) for f in findings)
    return (f"The {topic.field.title()} Digest, {c['month']} {c['year']}\n\nPaper of the month: "
            f"\"{c['title']}\" by {c['author']} and {c['coauthor']}.\n\n{c['intro']} {body}\n\n"
            f"Our take: {c['consequence']}")


def textbook(rng, topic, findings):
    c = _ctx(rng, topic)
    body = " ".join(finding_sentence(f, rng) for f in findings)
    return (f"Box {rng.randint(1, 12)}.{rng.randint(1, 9)}: {c['title']}\n\n{c['intro']} A study "
            f"by {c['author']} ({c['year']}) documented several such effects. {body}\n\n"
            f"Exercise: explain in your own words why this matters. ({c['consequence']})")


def talk(rng, topic, findings):
    c = _ctx(rng, topic)
    body = "\n".join(f"{i + 1}. {finding_sentence(f, rng)}" for i, f in enumerate(findings))
    return (f"Talk summary - {c['venue']}, {c['year']}\nSpeaker: {c['author']} ({c['inst']})\n"
            f"Title: {c['title']}\n\nThe speaker opened with the basics. {c['intro']} Then came "
            f"the examples:\n{body}\n\nIn the questions afterwards, {c['coauthor']} added: "
            f"\"{c['consequence']}\"")


def microblog(rng, topic, findings):
    c = _ctx(rng, topic)
    posts = [f"1/ new paper from {c['inst']} on {topic.subject}. thread"]
    posts += [f"{i + 2}/ {finding_sentence(f, rng, casual=True)}" for i, f in enumerate(findings)]
    posts.append(f"{len(findings) + 2}/ {c['consequence']}")
    return f"@{rng.choice(HANDLES)}\n" + "\n\n".join(posts)


def replication(rng, topic, findings):
    c = _ctx(rng, topic)
    body = " ".join(f"Confirmed: {finding_sentence(f, rng)}" for f in findings)
    return (f"Replication report: {c['title']}\n\nA group at {c['inst']} repeated the original "
            f"study by {c['author']} with {c['n']} new cases. {c['intro']} {body} The effects "
            f"were as large as first reported. {c['consequence']}")


def interview(rng, topic, findings):
    c = _ctx(rng, topic)
    parts = [f"Interviewer: How did the project start?\n{c['author']}: {c['intro']}"]
    for f in findings:
        parts.append(f"Interviewer: What surprised you?\n{c['author']}: {finding_sentence(f, rng)}")
    parts.append(f"Interviewer: What should readers take away?\n{c['author']}: {c['consequence']}")
    return f"In conversation: {c['author']} on \"{c['title']}\"\n\n" + "\n\n".join(parts)


def memo(rng, topic, findings):
    c = _ctx(rng, topic)
    items = "\n".join(f"- {finding_sentence(f, rng)}" for f in findings)
    return (f"MEMO\nTo: all staff\nFrom: {c['author']}\nDate: {c['month']} {c['year']}\n"
            f"Re: {c['title']}\n\nPlease be aware of the following results from {c['inst']}.\n"
            f"{items}\n\n{c['consequence']} Questions to {c['coauthor']}.")


def encyclopedia(rng, topic, findings):
    c = _ctx(rng, topic)
    body = " ".join(finding_sentence(f, rng) for f in findings)
    return (f"{c['title']}\n\nFrom the open encyclopedia of {topic.field}.\n\n{c['intro']} "
            f"The best-known survey ({c['author']} and {c['coauthor']}, {c['year']}) reported "
            f"several effects. {body}\n\nSee also: {rng.choice(topic.titles)}.")


FRAMES: dict[str, Callable] = {
    "paper": paper, "blog": blog, "news": news, "forum": forum, "lecture": lecture, "faq": faq,
    "podcast": podcast, "newsletter": newsletter, "textbook": textbook, "talk": talk,
    "microblog": microblog, "replication": replication, "interview": interview, "memo": memo,
    "encyclopedia": encyclopedia,
}
