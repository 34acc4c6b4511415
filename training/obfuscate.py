"""Obfuscation transforms used for augmentation and for the robustness evaluation.

Each transform rewrites the words people try to hide (a word from ``TARGET_WORDS`` when the text has
one, otherwise a few random longer words) the way evaders do: leetspeak, spaced-out letters,
homoglyphs from other scripts, zero-width characters, and a mix of them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

# Common slurs/profanity stems targeted first (evaders obfuscate exactly these words).
TARGET_WORDS = frozenset(
    [
        "fuck",
        "fucking",
        "fucker",
        "fucked",
        "shit",
        "shitty",
        "bitch",
        "bitches",
        "cunt",
        "dick",
        "dickhead",
        "cock",
        "pussy",
        "ass",
        "asshole",
        "bastard",
        "whore",
        "slut",
        "hoe",
        "hoes",
        "nigger",
        "nigga",
        "niggas",
        "faggot",
        "fag",
        "retard",
        "retarded",
        "idiot",
        "idiots",
        "stupid",
        "moron",
        "dumb",
        "kill",
        "die",
        "rape",
        "suck",
        "sucks",
        "loser",
        "scum",
        "trash",
        "ugly",
        "fat",
        "gay",
        "dyke",
        "tranny",
        "twat",
        "wanker",
        "prick",
        "douche",
        "jerk",
        "hate",
        "pig",
        "crap",
        "damn",
        "penis",
        "vagina",
        "porn",
        "sex",
        "kike",
        "spic",
        "chink",
        "wetback",
        "coon",
    ]
)

LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "g": "9", "b": "8"}
LEET_SYMBOLS = {"a": "@", "s": "$", "i": "!"}
# Latin → lookalike from Cyrillic/Greek (all in the Unicode confusables table).
HOMOGLYPHS = {
    "a": "а",
    "c": "с",
    "e": "е",
    "i": "і",
    "j": "ј",
    "o": "о",
    "p": "р",
    "s": "ѕ",
    "x": "х",
    "y": "у",
    "h": "һ",
    "k": "ｋ",
    "n": "ո",
    "u": "υ",
    "v": "ν",
    "d": "ԁ",
    "l": "ⅼ",
    "t": "ｔ",
}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")

_WORD = re.compile(r"[A-Za-z]+")


def _targets(text: str, rng: random.Random) -> list[re.Match[str]]:
    words = list(_WORD.finditer(text))
    hits = [m for m in words if m.group(0).lower() in TARGET_WORDS]
    if hits:
        return hits
    longer = [m for m in words if len(m.group(0)) >= 4]
    if not longer:
        return words[:1]
    return rng.sample(longer, k=min(len(longer), max(1, len(longer) // 5)))


def _rewrite(text: str, rng: random.Random, fn: Callable[[str, random.Random], str]) -> str:
    targets = {m.start(): m for m in _targets(text, rng)}
    out: list[str] = []
    pos = 0
    for start in sorted(targets):
        m = targets[start]
        out.append(text[pos:start])
        out.append(fn(m.group(0), rng))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _leet_word(word: str, rng: random.Random) -> str:
    chars = list(word)
    idx = [i for i, c in enumerate(chars) if c.lower() in LEET]
    if not idx:
        return word
    for i in rng.sample(idx, k=max(1, len(idx) // 2 + rng.randint(0, 1))):
        c = chars[i].lower()
        chars[i] = LEET_SYMBOLS[c] if c in LEET_SYMBOLS and rng.random() < 0.3 else LEET[c]
    return "".join(chars)


def _space_word(word: str, rng: random.Random) -> str:
    sep = rng.choice([" ", ".", "-", "*", "_"])
    # Evaders leave a wider gap around a spaced-out word so it still reads as one word.
    return f" {sep.join(word)} " if sep == " " else sep.join(word)


def _homoglyph_word(word: str, rng: random.Random) -> str:
    return "".join(HOMOGLYPHS.get(c, c) if c in HOMOGLYPHS and rng.random() < 0.7 else c for c in word)


def _zero_width_word(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word
    cut = rng.randint(1, len(word) - 1)
    return word[:cut] + rng.choice(ZERO_WIDTH) + word[cut:]


def leet(text: str, rng: random.Random) -> str:
    return _rewrite(text, rng, _leet_word)


def spacing(text: str, rng: random.Random) -> str:
    return _rewrite(text, rng, _space_word)


def homoglyphs(text: str, rng: random.Random) -> str:
    return _rewrite(text, rng, _homoglyph_word)


def zero_width(text: str, rng: random.Random) -> str:
    return _rewrite(text, rng, _zero_width_word)


def mixed(text: str, rng: random.Random) -> str:
    fns = [_leet_word, _space_word, _homoglyph_word, _zero_width_word]
    return _rewrite(text, rng, lambda w, r: r.choice(fns)(w, r))


TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "leetspeak": leet,
    "spacing": spacing,
    "confusables": homoglyphs,
    "zero_width": zero_width,
    "mixed": mixed,
}
