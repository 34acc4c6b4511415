"""TF-IDF + logistic regression baseline, trained on the same split (one model per label, on the rows
where that label is known). Word 1–2-grams plus character 2–5-grams, like the classic Kaggle kernels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from moderation.labels import LABELS
from moderation.normalize import normalize_for_scoring
from training.data import Example
from training.metrics import arrays


class TfidfBaseline:
    def __init__(
        self, max_features: int = 200_000, normalize: bool = True, char_range: tuple[int, int] = (2, 5)
    ) -> None:
        self.word = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, max_features=max_features, sublinear_tf=True
        )
        self.char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=char_range, min_df=3, max_features=max_features, sublinear_tf=True
        )
        self.normalize = normalize
        self.models: dict[str, LogisticRegression | float] = {}

    def _prep(self, texts: Sequence[str]) -> list[str]:
        return [normalize_for_scoring(t) for t in texts] if self.normalize else list(texts)

    def _features(self, texts: Sequence[str], fit: bool = False):  # type: ignore[no-untyped-def]
        t = self._prep(texts)
        if fit:
            return hstack([self.word.fit_transform(t), self.char.fit_transform(t)]).tocsr()
        return hstack([self.word.transform(t), self.char.transform(t)]).tocsr()

    def fit(self, rows: Sequence[Example]) -> TfidfBaseline:
        x = self._features([e.text for e in rows], fit=True)
        labels, masks = arrays(rows)
        for j, lab in enumerate(LABELS):
            known = masks[:, j] > 0
            y = labels[known, j]
            if y.min() == y.max():
                self.models[lab] = float(y.mean())
                continue
            clf = LogisticRegression(C=4.0, max_iter=1000, solver="liblinear")
            clf.fit(x[known], y)
            self.models[lab] = clf
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        x = self._features(texts)
        out = np.zeros((x.shape[0], len(LABELS)))
        for j, lab in enumerate(LABELS):
            m = self.models[lab]
            out[:, j] = m if isinstance(m, float) else m.predict_proba(x)[:, 1]
        return out
