"""Confusable negatives generated from a wake phrase's sound: texts a detector should not fire on, made from the
phrase's espeak-ng phonemes rather than by hand.

Four kinds, each phonemized and ranked by the edit distance between its phoneme string and the phrase's (stress
marks removed, normalised by the longer string):

- ``partial``: the phrase cut short: its first or last word(s), or for one word its first or last syllables;
- ``swap`` (phrases of several words): one word replaced by the closest-sounding other words of the word list,
  e.g. "smart mirror" -> "smart marvin", "start mirror";
- ``word``: words of a word list (the kit's own vocabulary, or the caller's) whose pronunciation is closest;
- ``edit``: one letter of one word substituted (vowel for vowel, consonant for consonant) or deleted, e.g.
  "computer" -> "competer", "bomputer"; what a TTS engine then says is a near-miss of the phrase.

Apart from partials, a candidate must differ from the phrase by at least ``min_distance`` (normalised) and two
phoneme symbols: a text one symbol away ("smart mirro") is said by a TTS engine almost exactly like the phrase, and
labelling hundreds of such clips as negatives teaches a small student to ignore the phrase itself (measured: a
student trained with 20 one-symbol edits of "smart mirror" among its negatives detected none of the phrases).
An edit must also change the sound of the *word* it edits by at least ``min_edit_word_distance``: two symbols of a
long word ("computer" ``k@mpjut3`` -> "compujer" ``k@mpjudZ3``, "computir") leave a near-homophone that espeak-ng,
flite and festival say almost like the phrase and label it a negative (six of "computer"'s ten confusables were such;
its student missed 95% of its test positives at 2 FA/h, and 92% without them: the rest is its teacher's, README). In a
phrase of several words the same two symbols change a short word a lot ("bmart" for "smart": 0.33) and such edits stay.
A candidate is dropped when it is the phrase (or one of ``exclude``, the other phrases of a command set) or is
pronounced exactly like one of them: a homophone is a positive, not a negative. Pronunciations are distinct.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from edgekd.core.errors import ConfigError

__all__ = ["Confusable", "confusables", "normalize_phrase", "phonemize", "phoneme_distance"]

_VOWELS = "aeiouy"
_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_STRESS = re.compile(r"[',#%=_:]")
_ALLOWED = re.compile(r"^[a-z][a-z' -]*$")


@dataclass(frozen=True)
class Confusable:
    text: str
    phonemes: str
    distance: float  # normalised phoneme edit distance to the phrase, (0, 1]
    kind: str  # "edit", "partial" or "word"


def normalize_phrase(phrase: str) -> str:
    """Lower case, single spaces; a phrase espeak-ng cannot phonemize as English words is refused with one line."""
    text = " ".join(phrase.lower().split())
    if not text:
        raise ConfigError("the wake phrase is empty; give the words to detect, e.g. --phrase \"computer\"")
    if not _ALLOWED.match(text):
        raise ConfigError(f"espeak-ng cannot phonemize {phrase!r} as English words: use the letters a-z, spaces, hyphens and "
                          "apostrophes (write numbers as words)")
    return text


@functools.lru_cache(maxsize=4096)  # every candidate and list word is phonemized once per process
def phonemize(text: str) -> str:
    """The phoneme string of ``text`` (espeak-ng, en-us) without stress and length marks."""
    from edgekd.data.voices.espeak import Espeak

    return _STRESS.sub("", Espeak().phonemes(text)).strip()


def phoneme_distance(a: str, b: str) -> float:
    """Levenshtein distance between two phoneme strings (spaces ignored), divided by the longer length."""
    a, b = a.replace(" ", ""), b.replace(" ", "")
    if not a and not b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] / max(len(a), len(b))


def _edits(words: list[str]) -> dict[str, tuple[int, int]]:
    """Every text with one letter of one word substituted within its class, or deleted (words of 3+ letters), with
    the (word, letter) position it changed."""
    out: dict[str, tuple[int, int]] = {}
    for k, w in enumerate(words):
        for i, c in enumerate(w):
            pool = _VOWELS if c in _VOWELS else _CONSONANTS if c in _CONSONANTS else ""
            variants = [w[:i] + r + w[i + 1 :] for r in pool if r != c]
            if len(w) >= 3:
                variants.append(w[:i] + w[i + 1 :])
            for v in variants:
                out.setdefault(" ".join([*words[:k], v, *words[k + 1 :]]), (k, i))
    return out


def _word_distance(edited: str, words: list[str], k: int) -> float:
    """Phoneme distance between word ``k`` of ``edited`` and of the phrase (``words``), each phonemized alone."""
    return phoneme_distance(phonemize(edited.split()[k]), phonemize(words[k]))


def _syllable_cuts(word: str) -> set[str]:
    """The word's first and last syllables, cut between vowel groups ("computer" -> "com", "comput", "puter", "ter")."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"[aeiouy]+", word)]
    cuts = set()
    for (_, end), (nxt, _) in zip(groups[:-1], groups[1:], strict=True):
        cuts.add(word[: end + 1])  # the syllable with one consonant of its coda
        cuts.add(word[max(end, nxt - 1) :])  # from the consonant that opens the next syllable
    return {c for c in cuts if len(c) >= 2 and c != word}


def _partials(words: list[str]) -> set[str]:
    if len(words) > 1:
        return {" ".join(words[:i]) for i in range(1, len(words))} | {" ".join(words[i:]) for i in range(1, len(words))}
    return _syllable_cuts(words[0])


def _vocabulary() -> tuple[str, ...]:
    from edgekd.data import KWS12_KEYWORDS
    from edgekd.data.synth_kws import OTHER_WORDS
    from edgekd.data.synth_wakeword import CONFUSABLES, SENTENCE_WORDS

    return tuple(dict.fromkeys((*KWS12_KEYWORDS, *OTHER_WORDS, *SENTENCE_WORDS, *CONFUSABLES)))


def _swaps(words: list[str], vocabulary: tuple[str, ...], per_word: int = 3) -> set[str]:
    """Each word of a multi-word phrase replaced by the ``per_word`` closest-sounding vocabulary words."""
    if len(words) < 2:
        return set()
    out = set()
    for k, w in enumerate(words):
        target = phonemize(w)
        near = sorted((phoneme_distance(phonemize(v), target), v) for v in vocabulary if v != w and " " not in v)
        out.update(" ".join([*words[:k], v, *words[k + 1 :]]) for d, v in near[: per_word] if d > 0)
    return out


def confusables(phrase: str, n: int = 24, *, words: Sequence[str] | None = None, exclude: Sequence[str] = (),
                min_distance: float = 0.2, max_distance: float = 0.5, min_edit_word_distance: float = 0.3) -> list[Confusable]:
    """Up to ``n`` confusable texts for ``phrase``: every partial, then swaps, list words and edits (a quarter of the
    list at most, one per letter; each at least ``min_edit_word_distance`` from the word it edits) between
    ``min_distance`` and ``max_distance`` (and at least two phoneme symbols away), closest first. ``words``: the word
    list (default: the kit's vocabulary); ``exclude``: other phrases of a command set, never returned, nor anything
    pronounced like them."""
    text = normalize_phrase(phrase)
    target = phonemize(text)
    if not target:
        raise ConfigError(f"espeak-ng gives no phonemes for {phrase!r}; give English words")
    banned_text = {text, *(normalize_phrase(e) for e in exclude)}
    banned_ph = {phonemize(t).replace(" ", "") for t in banned_text}
    seen: dict[str, Confusable] = {}
    tokens = text.split()
    edits = _edits(tokens)
    vocabulary = tuple(w.lower() for w in (words if words is not None else _vocabulary()))
    size = len(target.replace(" ", ""))
    # real words first: a near-miss that is also a word keeps that kind (and escapes the cap on edits below)
    kinds = [("word", set(vocabulary)), ("partial", _partials(tokens)), ("swap", _swaps(tokens, vocabulary)), ("edit", set(edits))]
    for kind, cands in kinds:
        for cand in sorted(cands):
            if cand in banned_text or not _ALLOWED.match(cand):
                continue
            ph = phonemize(cand)
            key = ph.replace(" ", "")
            if not key or key in banned_ph or key in seen:
                continue
            d = phoneme_distance(ph, target)
            if kind != "partial" and not (min_distance <= d <= max_distance and d * max(size, len(key)) >= 2 - 1e-9):
                continue
            if kind == "edit" and _word_distance(cand, tokens, edits[cand][0]) < min_edit_word_distance:
                continue
            seen[key] = Confusable(cand, ph, round(d, 4), kind)
    partial = sorted((c for c in seen.values() if c.kind == "partial"), key=lambda c: (c.distance, c.text))
    rest = sorted((c for c in seen.values() if c.kind != "partial"), key=lambda c: (c.distance, c.text))
    others = [c for c in rest if c.kind != "edit"]
    used: set[tuple[int, int]] = set()
    near: list[Confusable] = []
    for c in rest:  # edits: a quarter of the list at most, one per letter, so they cover the whole phrase
        if c.kind == "edit" and edits[c.text] not in used and len(near) < max(2, n // 4):
            used.add(edits[c.text])
            near.append(c)
    return (partial + sorted(others + near, key=lambda c: (c.distance, c.text)))[:n]
