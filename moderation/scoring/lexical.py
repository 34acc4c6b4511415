"""The lexical head: TF-IDF + logistic regression beside the transformer, stacked per label.

An artifact may carry ``lexical.json`` (n-gram vocabularies, analyzer settings, the stacking
parameters) and ``lexical.safetensors`` (IDF vectors, per-label coefficients and intercepts). When
present, every score is

    p = sigmoid(a · logit(p_model) + b · z_lexical + c)

per label, where ``p_model`` is the transformer's (calibrated) probability — the max over the
message's windows — and ``z_lexical`` the linear model's decision value on the whole normalised text
(word 1–2-grams and character n-grams — 4-grams in the shipped head — any length). ``(a, b, c)``
are fitted on held-out validation rows by ``training.lexical``; ``b = 0`` means the label uses the
transformer alone (threat: the lexical model has too few positives to help). Classic Jigsaw
practice: n-gram models catch rare spellings and slurs the small encoder under-weights, and
blending them with a neural model is cheaper than a bigger encoder (docs/MODEL.md "The lexical
head").

No pickles: the vocabularies are JSON and the arrays safetensors, so loading an artifact never runs
code from it. Empty texts keep their all-zero scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moderation.scoring.artifact import ArtifactError

LEXICAL_JSON = "lexical.json"
LEXICAL_ARRAYS = "lexical.safetensors"
FORMAT = 1
_EPS = 1e-6


def logit(p: np.ndarray, eps: float = _EPS) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


@dataclass(frozen=True, slots=True)
class AnalyzerSpec:
    """The settings of one ``TfidfVectorizer`` (``analyzer`` "word" or "char_wb")."""

    analyzer: str
    ngram_range: tuple[int, int]
    sublinear_tf: bool = True
    lowercase: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "sublinear_tf": self.sublinear_tf,
            "lowercase": self.lowercase,
        }


class LexicalHead:
    """Inference side of the lexical head: ``decision(texts)`` and ``combine(probs, texts)``."""

    def __init__(
        self,
        labels: Sequence[str],
        specs: Sequence[AnalyzerSpec],
        vocabularies: Sequence[Sequence[str]],
        idfs: Sequence[np.ndarray],
        coef: np.ndarray,
        intercept: np.ndarray,
        stack: np.ndarray,
        info: dict[str, Any] | None = None,
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.labels = tuple(labels)
        n = len(self.labels)
        width = sum(len(v) for v in vocabularies)
        if len(specs) != len(vocabularies) or len(idfs) != len(vocabularies):
            raise ValueError("one vocabulary and one IDF vector per analyzer")
        if coef.shape != (n, width) or intercept.shape != (n,) or stack.shape != (n, 3):
            raise ValueError(
                f"lexical arrays do not fit: coef {coef.shape}, intercept {intercept.shape}, stack "
                f"{stack.shape} for {n} labels and {width} features"
            )
        self.specs = tuple(specs)
        self.vocabularies = [list(v) for v in vocabularies]
        self.vectorizers = []
        for spec, vocab, idf in zip(specs, vocabularies, idfs, strict=True):
            if len(idf) != len(vocab):
                raise ValueError(f"{spec.analyzer}: {len(vocab)} terms but {len(idf)} IDF weights")
            vec = TfidfVectorizer(
                analyzer=spec.analyzer,
                ngram_range=spec.ngram_range,
                sublinear_tf=spec.sublinear_tf,
                lowercase=spec.lowercase,
                vocabulary={term: i for i, term in enumerate(vocab)},
                dtype=np.float32,
            )
            vec.idf_ = np.asarray(idf, dtype=np.float64)
            self.vectorizers.append(vec)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.stack = np.asarray(stack, dtype=np.float64)
        self.info = dict(info or {})

    # ------------------------------------------------------------------ scoring

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """The linear model's per-label decision values (logits), shape ``(len(texts), labels)``."""
        from scipy.sparse import hstack

        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        x = hstack([v.transform(list(texts)) for v in self.vectorizers]).tocsr()
        return np.asarray(x @ self.coef.T, dtype=np.float32) + self.intercept[None, :]

    def combine(self, probs: Sequence[Sequence[float]], texts: Sequence[str]) -> list[list[float]]:
        """The stacked probabilities for the transformer's ``probs`` of the (normalised) ``texts``.

        Texts that are empty after normalising keep the transformer's row (all zeros)."""
        out = [list(map(float, row)) for row in probs]
        live = [i for i, t in enumerate(texts) if t.strip()]
        if not live:
            return out
        zm = logit(np.asarray([out[i] for i in live], dtype=np.float64))
        zl = self.decision([texts[i] for i in live]).astype(np.float64)
        a, b, c = self.stack[:, 0], self.stack[:, 1], self.stack[:, 2]
        z = a[None, :] * zm + b[None, :] * zl + c[None, :]
        p = 1.0 / (1.0 + np.exp(-z))
        for row, i in zip(p.tolist(), live, strict=True):
            out[i] = row
        return out

    # ------------------------------------------------------------------ files

    def save(self, directory: Path | str) -> None:
        from safetensors.numpy import save_file

        d = Path(directory)
        meta = {
            "format": FORMAT,
            "labels": list(self.labels),
            "analyzers": [
                {**s.to_json(), "vocabulary": v} for s, v in zip(self.specs, self.vocabularies, strict=True)
            ],
            "stack": {
                lab: {"a": float(r[0]), "b": float(r[1]), "c": float(r[2])}
                for lab, r in zip(self.labels, self.stack, strict=True)
            },
            "info": self.info,
        }
        (d / LEXICAL_JSON).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        arrays = {f"idf_{i}": v.idf_.astype(np.float32) for i, v in enumerate(self.vectorizers)}
        arrays["coef"] = self.coef.astype(np.float16)
        arrays["intercept"] = self.intercept.astype(np.float32)
        save_file(arrays, str(d / LEXICAL_ARRAYS), metadata={"format": str(FORMAT)})
        (d / LEXICAL_ARRAYS).chmod(0o644)  # safetensors writes 0600; the artifact is world-readable

    @classmethod
    def load(cls, directory: Path | str, labels: Sequence[str]) -> LexicalHead | None:
        """The head stored in an artifact directory; None when it has none. ``ArtifactError`` naming
        the file when one of the two files is missing or either is corrupt."""
        d = Path(directory)
        meta_path, arr_path = d / LEXICAL_JSON, d / LEXICAL_ARRAYS
        if not meta_path.exists() and not arr_path.exists():
            return None
        for p in (meta_path, arr_path):
            if not p.is_file():
                raise ArtifactError(p, "lexical head is incomplete: this file is missing")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"unknown lexical format {meta.get('format')!r} (this build reads {FORMAT})")
            if tuple(meta["labels"]) != tuple(labels):
                raise ValueError(f"labels {meta['labels']} differ from the card's {list(labels)}")
            specs = [
                AnalyzerSpec(
                    str(a["analyzer"]),
                    (int(a["ngram_range"][0]), int(a["ngram_range"][1])),
                    bool(a["sublinear_tf"]),
                    bool(a["lowercase"]),
                )
                for a in meta["analyzers"]
            ]
            vocabs = [list(map(str, a["vocabulary"])) for a in meta["analyzers"]]
            stack = np.array([[meta["stack"][lab][k] for k in "abc"] for lab in labels], dtype=np.float64)
            if not np.isfinite(stack).all():
                raise ValueError("non-finite stacking parameters")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ArtifactError(meta_path, f"corrupt lexical head: {exc}") from exc
        try:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file

            try:
                arrays = load_file(str(arr_path))
            except (SafetensorError, OSError, ValueError) as exc:
                raise ValueError(str(exc)) from exc
            idfs = [arrays[f"idf_{i}"] for i in range(len(specs))]
            return cls(
                labels, specs, vocabs, idfs, arrays["coef"], arrays["intercept"], stack, meta.get("info")
            )
        except (ValueError, KeyError) as exc:
            raise ArtifactError(arr_path, f"corrupt lexical arrays: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        return {
            "features": sum(len(v) for v in self.vocabularies),
            "analyzers": [f"{s.analyzer} {s.ngram_range[0]}-{s.ngram_range[1]}" for s in self.specs],
            "stack": {
                lab: [round(float(x), 4) for x in r] for lab, r in zip(self.labels, self.stack, strict=True)
            },
            "uses_lexical": [lab for lab, r in zip(self.labels, self.stack, strict=True) if r[1] > 0],
            **({"stack_rows": self.info["stack_rows"]} if "stack_rows" in self.info else {}),
        }


def identity_stack(n: int) -> np.ndarray:
    """``(a, b, c) = (1, 0, 0)`` for every label: the transformer alone."""
    out = np.zeros((n, 3))
    out[:, 0] = 1.0
    return out
