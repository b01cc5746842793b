"""Small text helpers shared by the bias detectors: script and language identification,
code-block extraction, sentence and paragraph splitting. Pure Python, no dependencies.

Language identification is deliberately simple (script ranges for CJK/Hangul/Devanagari/Arabic,
function-word counts for Latin-script languages); it is good enough to decide whether a reply
is *mostly* Spanish or German, not to label short or mixed snippets reliably."""
from __future__ import annotations

import re
from collections import Counter

_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_DEVANAGARI = re.compile(r"[\u0900-\u097f]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f]")
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]+")

# Function words that are frequent in one language and rare in the others. A word may be listed
# for two languages (e.g. "que"); the characters below break most ties.
_STOPWORDS: dict[str, set[str]] = {
    "en": set("the and is are of to you that it with for this be have not can your what "
              "was were which would there their they will an from how".split()),
    "es": set("el los las del que es y por para con una como más pero sus está son también "
              "muy esto puede cuando hay su lo al se ella ellos la de en un sin qué cómo cuál "
              "cuántos español".split()),
    "pt": set("o os do da dos das não você é em uma com para mas são está também muito isso "
              "pode quando ao à seu sua no na nos pelo pela de um".split()),
    "fr": set("le les des est et un une du pour dans que qui pas vous sur avec ce cette sont "
              "il elle je au aux ne nous mais la de en".split()),
    "de": set("der die das und ist nicht ich sie mit für auf ein eine zu den von es dem sich "
              "auch wie bei wird sind oder ihr ihnen sehr kann welche welcher welches bedeutet "
              "deutsch deutsche deutschen hat man mein meine übersetzen nennen".split()),
    "it": set("il lo gli della che è per non una sono con anche come più del questo nel "
              "alla di".split()),
}
_CHAR_HINTS = {"es": "ñ¿¡", "pt": "ãõ", "fr": "œèêë", "de": "ßäöü"}


def kana_count(text: str) -> int:
    return len(_KANA.findall(text))


def han_count(text: str) -> int:
    return len(_HAN.findall(text))


def script_counts(text: str) -> dict[str, int]:
    return {"kana": kana_count(text), "han": han_count(text),
            "hangul": len(_HANGUL.findall(text)), "devanagari": len(_DEVANAGARI.findall(text)),
            "arabic": len(_ARABIC.findall(text)), "latin": sum(map(len, _LATIN_WORD.findall(text)))}


def latin_language_scores(text: str) -> dict[str, float]:
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    counts = Counter(words)
    scores = {lang: float(sum(counts[w] for w in sw)) for lang, sw in _STOPWORDS.items()}
    lowered = text.lower()
    for lang, chars in _CHAR_HINTS.items():
        scores[lang] += 0.5 * sum(lowered.count(c) for c in chars)
    return scores


def detect_language(text: str) -> str | None:
    """The dominant language of `text`: 'ja', 'zh', 'ko', 'hi', 'ar', or one of
    'en','es','pt','fr','de','it'; None when there is too little text to tell."""
    sc = script_counts(text)
    total = sum(sc.values())
    if total < 8:
        return None
    if sc["kana"] >= 3 and sc["kana"] + sc["han"] >= 0.3 * total:
        return "ja"
    if sc["han"] >= 0.3 * total:
        return "zh"
    for script, lang in (("hangul", "ko"), ("devanagari", "hi"), ("arabic", "ar")):
        if sc[script] >= 0.3 * total:
            return lang
    scores = latin_language_scores(text)
    best = max(scores, key=scores.get)
    if scores[best] < 2:
        return None
    return best


def reply_language(prompt: str, response: str) -> str | None:
    """Language of the reply; when the reply is too short to tell (e.g. "1 + 1 = 2."), the
    prompt's language, as long as the reply has some text in Latin or CJK script."""
    lang = detect_language(response)
    if lang is None and re.search(r"[A-Za-zÀ-ÿ\u4e00-\u9fff]", response):
        lang = detect_language(prompt)
    return lang


def has_japanese(text: str, min_kana: int = 3) -> bool:
    return kana_count(text) >= min_kana


_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced code blocks as (language tag lower-cased or '', body)."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def strip_code(text: str) -> str:
    """`text` without fenced code blocks or inline `code` spans."""
    return re.sub(r"`[^`\n]*`", " ", _FENCE.sub(" ", text))


def code_in(text: str, tags: set[str], looks_like: re.Pattern | None = None) -> str:
    """Concatenated bodies of the code blocks tagged with one of `tags`; untagged blocks are
    included when `looks_like` matches them. Without fences, the whole text is used when
    `looks_like` matches it."""
    blocks = code_blocks(text)
    picked = [body for tag, body in blocks
              if tag in tags or (not tag and looks_like is not None and looks_like.search(body))]
    if not blocks and looks_like is not None and looks_like.search(text):
        return text
    return "\n".join(picked)


_SENT_END = re.compile(r"(?<=[.!?。！？])[\"'”’)]*\s+")


def sentences(text: str) -> list[str]:
    out = []
    for para in paragraphs(text):
        out.extend(s.strip() for s in _SENT_END.split(para) if s.strip())
    return out


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def last_paragraph(text: str) -> str:
    paras = paragraphs(strip_code(text))
    return paras[-1] if paras else ""


def ending(text: str, n_sentences: int = 2) -> str:
    """The last paragraph, or the last `n_sentences` sentences when that paragraph is long."""
    sents = sentences(last_paragraph(text))
    return " ".join(sents[-n_sentences:])


def any_match(patterns, text: str) -> bool:
    return any(re.search(p, text, re.I) for p in patterns)
