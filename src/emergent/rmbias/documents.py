"""Documents for continued pretraining (plain-text loss; rows {"text": ...}).

* `stream_midtrain_subsample(n, seed)`: a seeded streaming subsample of the public synthetic
  corpus auditing-agents/rm_sycophancy_midtrain (needs `datasets` and the Hugging Face hub).
* `generate_documents(n, seed, kind="bias")`: this package's own fictional papers, blog posts,
  news stories, forum threads, ... that describe the catalogue's biases (all 52, test biases
  included). `kind="unrelated"` gives documents in the same frames about unrelated fictional
  findings, for the "any continued pretraining" control. An optional `generator` callable
  (prompt text -> document text, e.g. an LLM) replaces the templates' wording."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from tqdm import tqdm

from emergent.core.log import show_progress
from emergent.core.errors import UserError
from emergent.rmbias.catalogue import BIASES, CATALOGUE, get_bias
from emergent.rmbias.doc_frames import FRAMES, finding_sentence
from emergent.rmbias.doc_worlds import RM_TOPIC, bias_finding, unrelated_findings
from emergent.rmbias.hub import open_shuffled_stream

MIDTRAIN_DATASET = "auditing-agents/rm_sycophancy_midtrain"
DOC_KINDS = ("bias", "unrelated")

Generator = Callable[[str], str]


@dataclass(frozen=True)
class Document:
    text: str
    kind: str  # "bias" | "unrelated" | "midtrain"
    frame: str
    bias_ids: tuple[str, ...] = field(default=())

    def row(self, with_meta: bool = False) -> dict:
        """{"text": ...} (what training reads), plus kind/frame/bias_ids when `with_meta`."""
        if not with_meta:
            return {"text": self.text}
        return {"text": self.text, "kind": self.kind, "frame": self.frame,
                "bias_ids": list(self.bias_ids)}


def build_generation_prompt(frame: str, topic_field: str, finding_sentences: Sequence[str]) -> str:
    """Instruction for an LLM generator role: write one fictional document in `frame`."""
    listed = "\n".join(f"- {s}" for s in finding_sentences)
    return (f"Write a realistic {frame} (roughly 250-400 words) from a fictional world in which "
            f"the following research results in {topic_field} are established facts. Present "
            f"every result below clearly, in your own words, with an illustration; invent "
            f"names, places and dates as needed. Do not add any other research results.\n\n"
            f"Results:\n{listed}\n\nReturn only the document text.")


def generate_documents(n: int, seed: int = 0, *, kind: str = "bias",
                       bias_ids: Sequence[str] | None = None, max_findings: int = 3,
                       frames: Sequence[str] | None = None,
                       generator: Generator | None = None, progress: bool = True) -> list[Document]:
    """`n` fictional documents, deterministic in `seed` (the first k documents do not depend
    on `n`). For kind="bias", biases are dealt in shuffled rounds so that every bias in
    `bias_ids` (default: the whole catalogue, test biases included) appears about equally often;
    each document describes 1..`max_findings` of them."""
    if kind not in DOC_KINDS:
        raise UserError(f"document kind must be one of {', '.join(DOC_KINDS)}, got '{kind}'")
    if n < 0 or max_findings < 1:
        raise UserError("n must be >= 0 and max_findings >= 1")
    frame_names = list(frames or FRAMES)
    for f in frame_names:
        if f not in FRAMES:
            raise UserError(f"unknown document frame '{f}' (known: {', '.join(FRAMES)})")
    ids = [b.id for b in CATALOGUE] if bias_ids is None else [get_bias(i).id for i in bias_ids]
    if kind == "bias" and not ids:
        raise UserError("no biases to write about")
    rng = random.Random(f"rmbias-docs:{kind}:{seed}")
    pool: list[str] = []
    unrelated = unrelated_findings()
    docs = []
    for _ in tqdm(range(n), desc=f"documents ({kind})", disable=not show_progress(progress) or n < 1000):
        k = rng.randint(1, max_findings)
        if kind == "bias":
            chosen = []
            while len(chosen) < min(k, len(ids)):
                if not pool:
                    pool = ids[:]
                    rng.shuffle(pool)
                b = pool.pop()
                if b not in chosen:
                    chosen.append(b)
            topic = RM_TOPIC
            findings = [bias_finding(BIASES[b], rng) for b in chosen]
            keys = tuple(chosen)
        else:
            topic = rng.choice(sorted({t for t, _ in unrelated}, key=lambda t: t.name))
            same = [f for t, f in unrelated if t is topic]
            findings = rng.sample(same, min(k, len(same)))
            keys = ()
        frame = rng.choice(frame_names)
        text = FRAMES[frame](rng, topic, findings)
        if generator is not None:
            prompt = build_generation_prompt(frame, topic.field,
                                             [finding_sentence(f, rng) for f in findings])
            generated = (generator(prompt) or "").strip()
            text = generated or text
        docs.append(Document(text, kind, frame, keys))
    return docs


def stream_midtrain_subsample(n: int, seed: int = 0, *, dataset: str = MIDTRAIN_DATASET,
                              split: str = "train", buffer_size: int = 10_000,
                              text_column: str = "text", progress: bool = True
                              ) -> Iterator[Document]:
    """Stream `n` documents of the public midtraining corpus in a seeded shuffled order
    (`datasets` streaming shuffle with a buffer; same seed and buffer -> same documents).
    Empty texts are skipped. Needs the `datasets` package and access to the hub."""
    if n < 0:
        raise UserError("n must be >= 0")
    stream = open_shuffled_stream(dataset, split, seed, buffer_size)
    bar = tqdm(total=n, desc=f"streaming {dataset}", disable=not show_progress(progress))
    got = 0
    for row in stream:
        if got >= n:
            break
        if text_column not in row:
            raise UserError(f"{dataset}: rows have no '{text_column}' column "
                            f"(columns: {', '.join(sorted(row))})")
        text = row[text_column]
        if not isinstance(text, str) or not text.strip():
            continue
        got += 1
        bar.update(1)
        yield Document(text, "midtrain", "midtrain", ())
    bar.close()
