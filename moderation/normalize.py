"""Text normalisation for scoring: undo the tricks people use to slip past a classifier.

``normalize_for_scoring`` is applied to every message before the model sees it (and to every training
text, so the model and the normaliser agree). Callers keep the original text for display.

Steps, in order:

1. NFKC (fullwidth, mathematical alphanumerics, ligatures → plain letters).
2. Drop format characters (zero-width joiners/spaces, bidi overrides and isolates, soft hyphens) and
   stray combining marks (zalgo); accents on letters are dropped too, which the uncased tokenizer
   does anyway.
3. Confusables skeleton: per word, homoglyphs from other scripts (Cyrillic ``а``, Greek ``ο``…) are
   mapped to the Latin letters they imitate, using the Unicode confusables table shipped by the
   maintained ``confusable-homoglyphs`` package. A word is only rewritten when *every* character maps
   to ASCII, so genuine non-Latin words survive.
4. Lowercase.
5. Spaced-out letters: runs of three or more single characters with one consistent separator
   (``f u c k``, ``f.u.c.k``, ``f-u-c-k``) are joined.
6. Leetspeak inside words (``sh1t``, ``b!tch``, ``@ss``, ``$hit``, ``n00b``): digits/symbols are mapped
   to letters only in tokens that also contain letters, so ``2024`` and ``10:30`` are untouched, and
   tokens that are a word followed by a number suffix (``mp3``, ``covid19``, ``user123``) are kept.
7. Character floods (``fuuuuuck``) are cut to two repeats; whitespace is collapsed.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

from confusable_homoglyphs import confusables as _confusables

__all__ = ["normalize_for_scoring"]

_LEET: Final[dict[str, str]] = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "l",
}
_LEET_CLASS: Final[str] = "".join(re.escape(c) for c in _LEET)

# A "word" for leetspeak purposes: letters mixed with leet symbols.
_LEET_TOKEN: Final[re.Pattern[str]] = re.compile(rf"[a-z{_LEET_CLASS}]+")
_HAS_LEET: Final[re.Pattern[str]] = re.compile(rf"[{_LEET_CLASS}]")
_LETTER: Final[re.Pattern[str]] = re.compile(r"[a-z]")
_WORD_NUMBER_SUFFIX: Final[re.Pattern[str]] = re.compile(r"[a-z]+[0-9]+")
# Words evaders disguise. A token like "hat3" or "1d10t" that is letters followed by digits is
# ambiguous with "mp3"/"user123"; it is decoded only when the result is one of these.
_EVADED_WORDS: Final[frozenset[str]] = frozenset(
    [
        "fuck",
        "fucking",
        "fucker",
        "fucked",
        "fuk",
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
        "fags",
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
        "sucker",
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
        "hater",
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
        "tits",
        "boobs",
        "anal",
        "butt",
        "homo",
        "lesbian",
        "nazi",
        "jew",
        "muslim",
        "terrorist",
        "thot",
        "skank",
        "piss",
    ]
)
_NUMBER_WORD_SUFFIX: Final[re.Pattern[str]] = re.compile(r"[0-9]+(?:st|nd|rd|th|s|am|pm|k|m|x|d|h)")

# Single characters separated by one consistent separator: three or more with '.', '-', '_', '*'
# (``f.u.c.k``), four or more with spaces (``f u c k``; three would join chat shorthand like "u r a").
_CH: Final[str] = rf"[a-z0-9{_LEET_CLASS}]"
_SPACED: Final[re.Pattern[str]] = re.compile(
    rf"(?<![\w{_LEET_CLASS}])(?:{_CH}(?P<sep>\.|-|_|\*){_CH}(?:(?P=sep){_CH})+"
    rf"|{_CH}(?P<sp> +){_CH}(?P=sp){_CH}(?:(?P=sp){_CH})+)(?![\w{_LEET_CLASS}])\.?"
)
_SEPARATORS: Final[re.Pattern[str]] = re.compile(r"[ ._\-*]+")
_FLOOD: Final[re.Pattern[str]] = re.compile(r"(\w)\1{2,}")
_WS: Final[re.Pattern[str]] = re.compile(r"\s+")
_NON_ASCII_WORD: Final[re.Pattern[str]] = re.compile(r"[^\s]*[^\x00-\x7f][^\s]*")


def _build_confusables_table() -> dict[int, str]:
    """Non-ASCII code point → ASCII alphanumeric it imitates, from the Unicode confusables data."""
    table: dict[int, str] = {}
    data: dict[str, list[dict[str, str]]] = _confusables.confusables_data
    for char, entries in data.items():
        if len(char) != 1:
            continue
        if char.isascii():
            if not char.isalnum():
                continue
            for entry in entries:
                glyph = entry["c"]
                if len(glyph) == 1 and not glyph.isascii():
                    table.setdefault(ord(glyph), char.lower())
        else:
            for entry in entries:
                glyph = entry["c"]
                if len(glyph) == 1 and glyph.isascii() and glyph.isalnum():
                    table.setdefault(ord(char), glyph.lower())
                    break
    return table


_CONFUSABLES: Final[dict[int, str]] = _build_confusables_table()


def _strip_marks(text: str) -> str:
    """Remove format (Cf) characters and combining marks (Mn/Me) after canonical decomposition."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = [c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me", "Cf", "Cc") or c in "\n\t"]
    return unicodedata.normalize("NFC", "".join(kept))


@lru_cache(maxsize=16384)
def _skeleton_word(word: str) -> str:
    mapped = word.translate(_CONFUSABLES)
    return mapped if mapped.isascii() else word


def _skeleton(match: re.Match[str]) -> str:
    return _skeleton_word(match.group(0))


def _join_spaced(match: re.Match[str]) -> str:
    return _SEPARATORS.sub("", match.group(0))


@lru_cache(maxsize=16384)
def _deleet_token(token: str) -> str:
    if not _HAS_LEET.search(token) or not _LETTER.search(token):
        return token
    if _NUMBER_WORD_SUFFIX.fullmatch(token):
        return token
    if _WORD_NUMBER_SUFFIX.fullmatch(token):
        decoded = "".join(_LEET.get(c, c) for c in token)
        return decoded if decoded in _EVADED_WORDS else token
    # Leading '@' followed by a word is a mention (@alice), not leetspeak — unless it is "@ss"-like.
    if token.startswith("@") and len(token) > 4 and not _HAS_LEET.search(token[1:]):
        return token
    core = token.rstrip("!")  # "idiot!!!" keeps its exclamation marks
    tail = token[len(core) :]
    if not core or not _HAS_LEET.search(core):
        return token
    return "".join(_LEET.get(c, c) for c in core) + tail


def _deleet(match: re.Match[str]) -> str:
    return _deleet_token(match.group(0))


def normalize_for_scoring(text: str) -> str:
    """Return the canonical form of ``text`` that the model scores (see the module docstring)."""
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _strip_marks(text)
        if not text.isascii():
            text = _NON_ASCII_WORD.sub(_skeleton, text)
    text = text.lower()
    text = _SPACED.sub(_join_spaced, text)
    text = _LEET_TOKEN.sub(_deleet, text)
    text = _FLOOD.sub(r"\1\1", text)
    return _WS.sub(" ", text).strip()
