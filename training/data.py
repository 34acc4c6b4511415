"""Data loaders: every source becomes a list of ``Example`` with six labels and a per-label mask.

A mask of 0 means "this source does not say": the loss ignores that label for that row. The label
mapping of each shared set is documented on its loader (and in docs/MODEL.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moderation.labels import LABELS
from moderation.normalize import normalize_for_scoring

log = logging.getLogger(__name__)

csv.field_size_limit(sys.maxsize)

N_LABELS = len(LABELS)
IDX = {name: i for i, name in enumerate(LABELS)}


@dataclass(slots=True)
class Example:
    text: str
    labels: list[float]
    mask: list[float]
    source: str
    spans: tuple[int, ...] | None = None  # toxic character offsets (toxic spans data)
    meta: dict[str, str] = field(default_factory=dict)

    def known(self, label: str) -> bool:
        return self.mask[IDX[label]] > 0

    def value(self, label: str) -> float:
        return self.labels[IDX[label]]


class DataError(ValueError):
    """A data file is missing, malformed, or has none of the expected columns."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


def make(text: str, source: str, **known: float) -> Example:
    labels = [0.0] * N_LABELS
    mask = [0.0] * N_LABELS
    for name, value in known.items():
        labels[IDX[name]] = float(value)
        mask[IDX[name]] = 1.0
    return Example(text=text, labels=labels, mask=mask, source=source)


def _rows(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    if not path.exists():
        raise DataError(path, "file not found")
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh, delimiter=delimiter)


def _require(path: Path, row: dict[str, str], columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        raise DataError(path, f"missing columns {missing}; has {sorted(row)}")


def _usable(text: str | None) -> bool:
    return bool(text and text.strip() and text.strip() not in ("[deleted]", "[removed]"))


# --------------------------------------------------------------------------- Jigsaw 2018 (subset / full)


def load_jigsaw(path: Path, source: str = "jigsaw", limit: int | None = None) -> list[Example]:
    """Jigsaw 2018 ``train.csv`` (or the shared subset): all six labels known."""
    out: list[Example] = []
    for i, row in enumerate(_rows(path)):
        if i == 0:
            _require(path, row, ("comment_text", *LABELS))
        if limit is not None and len(out) >= limit:
            break
        if not _usable(row["comment_text"]):
            continue
        ex = make(row["comment_text"], source, **{k: float(row[k]) for k in LABELS})
        ex.meta["id"] = row.get("id", "")
        out.append(ex)
    return out


def load_jigsaw_test(test_csv: Path, labels_csv: Path, source: str = "jigsaw_test") -> list[Example]:
    """Kaggle ``test.csv`` + ``test_labels.csv``; rows labelled -1 (not scored by Kaggle) are dropped."""
    texts = {row["id"]: row["comment_text"] for row in _rows(test_csv)}
    out: list[Example] = []
    for row in _rows(labels_csv):
        values = [float(row[k]) for k in LABELS]
        if any(v < 0 for v in values) or row["id"] not in texts:
            continue
        out.append(make(texts[row["id"]], source, **dict(zip(LABELS, values, strict=True))))
    return out


# --------------------------------------------------------------------------- the other shared sets


def load_davidson(path: Path, limit: int | None = None) -> list[Example]:
    """Davidson 2017: class 0 hate / 1 offensive → toxic; class 0 hate → identity_hate."""
    out: list[Example] = []
    for i, row in enumerate(_rows(path)):
        if i == 0:
            _require(path, row, ("class", "tweet"))
        if limit is not None and len(out) >= limit:
            break
        cls = int(row["class"])
        if _usable(row["tweet"]):
            out.append(make(row["tweet"], "davidson", toxic=cls in (0, 1), identity_hate=cls == 0))
    return out


def load_olid(path: Path, limit: int | None = None) -> list[Example]:
    """OLID: OFF → toxic; identity_hate = targeted (TIN) at a group (GRP). NOT rows are 0 on both."""
    out: list[Example] = []
    for i, row in enumerate(_rows(path, delimiter="\t")):
        if i == 0:
            _require(path, row, ("tweet", "subtask_a", "subtask_b", "subtask_c"))
        if limit is not None and len(out) >= limit:
            break
        off = row["subtask_a"] == "OFF"
        grp = off and row["subtask_b"] == "TIN" and row["subtask_c"] == "GRP"
        if _usable(row["tweet"]):
            out.append(make(row["tweet"], "olid", toxic=off, identity_hate=grp))
    return out


def load_hatexplain(path: Path, source: str = "hatexplain", limit: int | None = None) -> list[Example]:
    """HateXplain: majority hate-or-offensive → toxic (the only label it provides)."""
    out: list[Example] = []
    for i, row in enumerate(_rows(path)):
        if i == 0:
            _require(path, row, ("text", "toxic"))
        if limit is not None and len(out) >= limit:
            break
        if _usable(row["text"]):
            ex = make(row["text"], source, toxic=float(row["toxic"]))
            ex.meta["target"] = row.get("target", "")
            out.append(ex)
    return out


def load_ruddit(
    path: Path, pos_at: float = 0.4, neg_below: float = 0.1, limit: int | None = None
) -> list[Example]:
    """Ruddit: offensiveness ≥ ``pos_at`` → toxic, < ``neg_below`` → not toxic; between → masked."""
    out: list[Example] = []
    for i, row in enumerate(_rows(path)):
        if i == 0:
            _require(path, row, ("txt", "offensiveness_score"))
        if limit is not None and len(out) >= limit:
            break
        score = float(row["offensiveness_score"])
        if not _usable(row["txt"]):
            continue
        if score >= pos_at:
            out.append(make(row["txt"], "ruddit", toxic=1))
        elif score < neg_below:
            out.append(make(row["txt"], "ruddit", toxic=0))
    return out


def load_toxic_spans(path: Path, source: str = "toxic_spans", limit: int | None = None) -> list[Example]:
    """SemEval-2021 toxic spans: every post is toxic; spans are character offsets of the toxic words."""
    out: list[Example] = []
    for i, row in enumerate(_rows(path)):
        if i == 0:
            _require(path, row, ("spans", "text"))
        if limit is not None and len(out) >= limit:
            break
        if not _usable(row["text"]):
            continue
        ex = make(row["text"], source, toxic=1)
        ex.spans = tuple(int(x) for x in json.loads(row["spans"]))
        out.append(ex)
    return out


# --------------------------------------------------------------------------- by path (product inputs)

CIVIL_COLUMNS = {
    "toxic": ("toxicity", "target"),
    "severe_toxic": ("severe_toxicity",),
    "obscene": ("obscene",),
    "threat": ("threat",),
    "insult": ("insult",),
    "identity_hate": ("identity_attack",),
}


def load_civil_comments(path: Path, threshold: float = 0.5, limit: int | None = None) -> list[Example]:
    """Civil Comments CSV: float annotator fractions ≥ ``threshold`` → 1. Missing columns stay masked."""
    out: list[Example] = []
    columns: dict[str, str] = {}
    text_col = "comment_text"
    for i, row in enumerate(_rows(path)):
        if i == 0:
            text_col = "comment_text" if "comment_text" in row else "text"
            _require(path, row, (text_col,))
            columns = {lab: c for lab, opts in CIVIL_COLUMNS.items() for c in opts if c in row}
            if not columns:
                raise DataError(path, "no Civil Comments score columns (toxicity/target, ...)")
        if limit is not None and len(out) >= limit:
            break
        if not _usable(row[text_col]):
            continue
        known = {lab: float(float(row[c]) >= threshold) for lab, c in columns.items() if row[c] != ""}
        out.append(make(row[text_col], "civil_comments", **known))
    return out


def load_jsonl(path: Path, source: str = "jsonl") -> list[Example]:
    """JSONL, one object a line, in either form:

    * ``{"text": ..., "labels": {"moderation": ["toxic", "insult"]}}`` — a full annotation: listed labels
      are 1, the others 0; ``"safe"`` (or an empty list) means no label.
    * ``{"text": ..., "labels": {"toxic": 1, "insult": 0}}`` — moderator verdicts: only the labels
      present are known, the rest stay masked.
    """
    if not path.exists():
        raise DataError(path, "file not found")
    out: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                text = obj["text"]
                labels = obj.get("labels", {})
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(path, f"line {lineno}: {exc}") from exc
            if not isinstance(text, str) or not _usable(text):
                continue
            if "moderation" in labels:
                names = [n for n in labels["moderation"] if n != "safe"]
                unknown = [n for n in names if n not in IDX]
                if unknown:
                    raise DataError(path, f"line {lineno}: unknown labels {unknown}")
                out.append(make(text, source, **{k: float(k in names) for k in LABELS}))
            else:
                known = {k: float(v) for k, v in labels.items() if k in IDX and v is not None}
                if known:
                    out.append(make(text, source, **known))
    return out


# --------------------------------------------------------------------------- shared set, dedup, split


def dedup_key(text: str) -> str:
    return hashlib.sha1(normalize_for_scoring(text).encode("utf-8")).hexdigest()


def merge_duplicates(examples: Iterable[Example]) -> list[Example]:
    """Merge rows whose normalised text is equal: known labels are OR-ed, masks unioned."""
    by_key: dict[str, Example] = {}
    for ex in examples:
        key = dedup_key(ex.text)
        seen = by_key.get(key)
        if seen is None:
            by_key[key] = Example(ex.text, list(ex.labels), list(ex.mask), ex.source, ex.spans, dict(ex.meta))
            continue
        for j in range(N_LABELS):
            if ex.mask[j]:
                seen.labels[j] = max(seen.labels[j], ex.labels[j]) if seen.mask[j] else ex.labels[j]
                seen.mask[j] = 1.0
    return list(by_key.values())


def in_validation(text: str, fraction: float, seed: int = 13) -> bool:
    """Fixed, seeded split by content: the same text always lands on the same side."""
    digest = hashlib.sha256(f"{seed}:{normalize_for_scoring(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(slots=True)
class Split:
    train: list[Example]
    valid: list[Example]
    files: dict[str, str]  # file name → sha256

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, rows in (("train", self.train), ("valid", self.valid)):
            for ex in rows:
                out.setdefault(ex.source, {"train": 0, "valid": 0})[name] += 1
        return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


SHARED_FILES = (
    "jigsaw2018_train_subset.csv",
    "davidson2017_labeled_data.csv",
    "olid_training_v1.0.tsv",
    "hatexplain_train.csv",
    "hatexplain_val.csv",
    "ruddit_with_text.csv",
    "toxic_spans_train.csv",
    "toxic_spans_trial.csv",
)


def load_shared(
    data_dir: Path,
    *,
    valid_fraction: float = 0.1,
    jigsaw_valid_fraction: float = 0.15,
    seed: int = 13,
    limit: int | None = None,
    extra: Sequence[Example] = (),
) -> Split:
    """All shared sets, deduplicated, split into train / validation.

    HateXplain keeps its official validation file; the toxic-spans trial file is held out entirely
    (it is the explanation benchmark). Every other source is split by content hash. A text that lands in
    validation from any source is removed from training, so nothing leaks.
    """
    d = Path(data_dir)
    sources: list[tuple[list[Example], float | None]] = [
        (load_jigsaw(d / "jigsaw2018_train_subset.csv", limit=limit), jigsaw_valid_fraction),
        (load_davidson(d / "davidson2017_labeled_data.csv", limit=limit), valid_fraction),
        (load_olid(d / "olid_training_v1.0.tsv", limit=limit), valid_fraction),
        (load_hatexplain(d / "hatexplain_train.csv", limit=limit), 0.0),
        (load_hatexplain(d / "hatexplain_val.csv", limit=limit), 1.0),
        (load_ruddit(d / "ruddit_with_text.csv", limit=limit), valid_fraction),
        (load_toxic_spans(d / "toxic_spans_train.csv", limit=limit), valid_fraction),
        (load_toxic_spans(d / "toxic_spans_trial.csv", source="toxic_spans_trial", limit=limit), 1.0),
        (list(extra), valid_fraction),
    ]
    valid_raw: list[Example] = []
    train_raw: list[Example] = []
    for rows, frac in sources:
        for ex in rows:
            go_valid = frac == 1.0 or (frac is not None and frac > 0 and in_validation(ex.text, frac, seed))
            (valid_raw if go_valid else train_raw).append(ex)
    valid_keys = {dedup_key(ex.text) for ex in valid_raw}
    train_raw = [ex for ex in train_raw if dedup_key(ex.text) not in valid_keys]
    files = {name: sha256_file(d / name) for name in SHARED_FILES if (d / name).exists()}
    # Validation rows are kept per source (no cross-source merge) so per-source metrics stay clean.
    return Split(train=merge_duplicates(train_raw), valid=valid_raw, files=files)


def load_by_path(path: Path | str, *, civil_threshold: float = 0.5) -> list[Example]:
    """Load a product data file, detecting its format: JSONL (moderation lists or moderator verdicts),
    Kaggle Jigsaw ``train.csv`` (six 0/1 columns), Civil Comments (float score columns). A Kaggle
    ``test.csv`` is paired with the ``test_labels.csv`` beside it (rows labelled -1 dropped)."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file not found")
    if p.suffix in (".jsonl", ".json", ".ndjson"):
        return load_jsonl(p, source=p.stem)
    with p.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    if "comment_text" in header and all(k in header for k in LABELS):
        return load_jigsaw(p, source=p.stem)
    if "comment_text" in header and "id" in header and (p.parent / "test_labels.csv").exists():
        return load_jigsaw_test(p, p.parent / "test_labels.csv")
    if any(c in header for opts in CIVIL_COLUMNS.values() for c in opts):
        return load_civil_comments(p, threshold=civil_threshold)
    raise DataError(p, f"unrecognised columns {header[:10]}")
