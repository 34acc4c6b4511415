"""``chatmod eval``: everything about a model artifact on the held-out validation split, as Markdown + PNGs.

Sections: per-label ROC-AUC / PR-AUC and precision/recall/F1 at the card's thresholds; per-source AUC
side by side with the TF-IDF + LR baseline; calibration (reliability curves, ECE); identity-term bias
(subgroup AUC, BPSN, BNSP); robustness to obfuscation (recall drop per transform, with and without
normalisation); explanation span F1 on the toxic spans trial set; int8 vs fp32 AUC and speed.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moderation.labels import LABELS
from training.data import Example, Split, load_shared
from training.metrics import arrays, per_label, prf, safe_auc, source_report

log = logging.getLogger(__name__)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_probs(scorer: Any, texts: Sequence[str], chunk: int = 512) -> np.ndarray:
    from tqdm import tqdm

    out: list[list[float]] = []
    for s in tqdm(range(0, len(texts), chunk), desc="score", leave=False, mininterval=5):
        out.extend(scorer.score_matrix(list(texts[s : s + chunk])))
    return np.array(out, dtype=np.float64).reshape(-1, len(LABELS))


# --------------------------------------------------------------------------- plots


def plot_roc(probs: np.ndarray, rows: Sequence[Example], path: Path, title: str) -> None:
    from sklearn.metrics import roc_curve

    plt = _plt()
    labels, masks = arrays(rows)
    fig, ax = plt.subplots(figsize=(6, 5))
    for j, lab in enumerate(LABELS):
        known = masks[:, j] > 0
        y = labels[known, j]
        if y.min() == y.max():
            continue
        fpr, tpr, _ = roc_curve(y, probs[known, j])
        ax.plot(fpr, tpr, label=f"{lab} ({safe_auc(y, probs[known, j]):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(probs: np.ndarray, rows: Sequence[Example], path: Path, bins: int = 10) -> None:
    plt = _plt()
    labels, masks = arrays(rows)
    fig, ax = plt.subplots(figsize=(6, 5))
    edges = np.linspace(0, 1, bins + 1)
    for j, lab in enumerate(LABELS):
        known = masks[:, j] > 0
        y, p = labels[known, j], probs[known, j]
        if not len(y) or y.max() == 0:
            continue
        idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            sel = idx == b
            if sel.sum() >= 5:
                xs.append(p[sel].mean())
                ys.append(y[sel].mean())
        ax.plot(xs, ys, marker="o", label=lab)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Reliability (validation)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(metrics_jsonl: Path, path: Path) -> bool:
    if not metrics_jsonl.is_file():
        return False
    rows = [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line.strip()]
    tr = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]
    va = [(r["step"], r["valid_loss"]) for r in rows if "valid_loss" in r]
    if not tr:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*zip(*tr, strict=True), label="train (EMA, pos-weighted)")
    if va:
        ax.plot(*zip(*va, strict=True), marker="o", label="validation sample (unweighted)")
    ax.set(xlabel="step", ylabel="masked BCE", title="Loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- sections


def robustness(
    scorer: Any, rows: Sequence[Example], thresholds: dict[str, float], *, sample: int = 400, seed: int = 11
) -> dict[str, Any]:
    """Recall of toxic validation messages at the review threshold, before/after each obfuscation,
    with the normaliser on (the product) and off (what the model alone would see)."""
    from training.obfuscate import TRANSFORMS

    toxic = [e for e in rows if e.known("toxic") and e.value("toxic") >= 1 and len(e.text) < 600]
    picked = random.Random(seed).sample(toxic, k=min(sample, len(toxic)))
    texts = [e.text for e in picked]
    thr = thresholds["toxic"]
    out: dict[str, Any] = {"n": len(picked), "threshold": thr, "transforms": {}}
    normalize = scorer.normalize
    try:
        for norm in (True, False):
            scorer.normalize = norm
            base = float((score_probs(scorer, texts)[:, 0] >= thr).mean())
            out[f"recall_clean_{'norm' if norm else 'raw'}"] = base
            for name, fn in TRANSFORMS.items():
                rng = random.Random(seed)
                obf = [fn(t, rng) for t in texts]
                rec = float((score_probs(scorer, obf)[:, 0] >= thr).mean())
                entry = out["transforms"].setdefault(name, {})
                entry["recall_norm" if norm else "recall_raw"] = rec
                entry["drop_norm" if norm else "drop_raw"] = base - rec
    finally:
        scorer.normalize = normalize
    out["max_drop_norm"] = max(v["drop_norm"] for v in out["transforms"].values())
    return out


def int8_comparison(
    model_dir: Path | None,
    rows: Sequence[Example],
    fp32_probs: np.ndarray,
    fp32_seconds: float,
    engine: str = "torch",
) -> dict[str, Any]:
    """int8 vs fp32 on the same rows: per-label AUC (where known), probability shift, speed, and the
    Jigsaw rows' mean six-label / any-toxic AUC (the only source that carries the rare labels).
    ``engine`` picks the quantiser: ``torch`` (dynamic, per-tensor) or ``onnx`` (ONNX Runtime,
    per-channel weights)."""
    from moderation.scoring.backend import TorchScorer

    q = TorchScorer.load(model_dir, device="cpu", quantize=True, engine=engine)  # type: ignore[arg-type]
    texts = [e.text for e in rows]
    t0 = time.perf_counter()
    qp = score_probs(q, texts)
    q_seconds = time.perf_counter() - t0
    fp = per_label(fp32_probs, rows)
    qr = per_label(qp, rows)
    out: dict[str, Any] = {
        "engine": engine,
        "n": len(rows),
        "fp32_msgs_per_s": len(rows) / fp32_seconds,
        "int8_msgs_per_s": len(rows) / q_seconds,
        "labels": {},
    }
    for lab in LABELS:
        a, b = fp[lab]["roc_auc"], qr[lab]["roc_auc"]
        out["labels"][lab] = {
            "fp32_auc": a,
            "int8_auc": b,
            "drop": (a - b) if a is not None and b is not None else None,
        }
    shift = np.abs(qp - fp32_probs)
    out["max_abs_prob_diff"] = float(shift.max())
    out["mean_abs_prob_diff"] = float(shift.mean())
    drops = [v["drop"] for v in out["labels"].values() if v["drop"] is not None]
    out["mean_auc_drop"] = float(np.mean(drops)) if drops else None
    jig = [i for i, e in enumerate(rows) if e.source == "jigsaw"]
    if jig:
        jrows = [rows[i] for i in jig]
        y, _known = arrays(jrows)
        for name, p in (("fp32", fp32_probs[jig]), ("int8", qp[jig])):
            aucs = [safe_auc(y[:, j], p[:, j]) for j in range(len(LABELS))]
            out[f"jigsaw_{name}"] = {
                "mean_auc": float(np.mean([a for a in aucs if a is not None])),
                "any_toxic_auc": safe_auc(y.max(axis=1), p.max(axis=1)),
            }
    return out


def _has_onnxruntime() -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    )


def baseline_probs(split: Split, run_dir: Path | None) -> np.ndarray:
    cache = run_dir / "baseline_valid_probs.npy" if run_dir else None
    if cache is not None and cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(split.valid), len(LABELS)):
            return probs
    from training.baseline import TfidfBaseline

    probs = TfidfBaseline().fit(split.train).predict_proba([e.text for e in split.valid])
    if cache is not None:
        np.save(cache, probs)
    return probs


# --------------------------------------------------------------------------- report


def _f(x: Any, nd: int = 4) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def evaluate_artifact(
    scorer: Any,
    data_dir: Path,
    out_dir: Path,
    *,
    run_dir: Path | None = None,
    int8: bool = True,
    baseline: bool = True,
    limit: int | None = None,
    model_dir: Path | None = None,
    span_sample: int = 150,
    robustness_sample: int = 400,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = run_dir / "split.pkl" if run_dir else None
    if cache is not None and cache.is_file():
        with cache.open("rb") as fh:
            split: Split = pickle.load(fh)
    else:
        split = load_shared(data_dir, limit=limit)
    valid = [e for e in split.valid if e.source != "toxic_spans_trial"]
    trial = [e for e in split.valid if e.source == "toxic_spans_trial"]
    thresholds = {lab: scorer.card.thresholds[lab] for lab in LABELS if lab in scorer.card.thresholds}
    review = {lab: (t.review_at if lab in thresholds else 0.5) for lab, t in thresholds.items()}
    review.setdefault("toxic", 0.5)

    t0 = time.perf_counter()
    probs = score_probs(scorer, [e.text for e in valid])
    fp32_seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "model": scorer.version,
        "device": str(scorer.device),
        "valid_rows": len(valid),
        "score_seconds": fp32_seconds,
    }
    report["labels"] = per_label(probs, valid, thresholds)
    report["sources"] = source_report(probs, valid)
    lexical = getattr(scorer, "lexical", None)
    if lexical is not None:
        # The same rows without the lexical head: what stacking it on adds (docs/MODEL.md).
        scorer.lexical = None
        try:
            report["transformer_alone_sources"] = source_report(
                score_probs(scorer, [e.text for e in valid]), valid
            )
        finally:
            scorer.lexical = lexical
        report["lexical"] = lexical.describe()
    plot_roc(probs, valid, out_dir / "roc.png", "ROC (validation, all sources)")
    jig = [i for i, e in enumerate(valid) if e.source == "jigsaw"]
    if jig:
        plot_roc(
            probs[jig], [valid[i] for i in jig], out_dir / "roc_jigsaw.png", "ROC (Jigsaw subset validation)"
        )
    plot_reliability(probs, valid, out_dir / "reliability.png")
    if run_dir is not None:
        plot_losses(run_dir / "metrics.jsonl", out_dir / "loss.png")

    if baseline:
        bprobs = baseline_probs(split, run_dir)
        keep = [i for i, e in enumerate(split.valid) if e.source != "toxic_spans_trial"]
        report["baseline_sources"] = source_report(bprobs[keep], valid)
        report["baseline_labels"] = per_label(bprobs[keep], valid)

    from training.bias import bias_report

    report["bias"] = bias_report(lambda texts: score_probs(scorer, texts)[:, 0])
    report["robustness"] = robustness(scorer, valid, review, sample=robustness_sample)
    if trial and span_sample:
        from training.explain_eval import span_report

        report["spans"] = span_report(scorer, trial, sample=span_sample)
    if int8:
        # The whole split, not a sample: a sample of 1,500 held two or three threat positives.
        report["int8"] = int8_comparison(model_dir, valid, probs, fp32_seconds)
        if _has_onnxruntime():
            report["int8_onnx"] = int8_comparison(model_dir, valid, probs, fp32_seconds, engine="onnx")
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    path = out_dir / "report.md"
    path.write_text(render_markdown(report), encoding="utf-8")
    return path


def render_markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of `{r['model']}`",
        "",
        f"Validation rows: {r['valid_rows']} (held-out split of ../shared/data; device {r['device']}).",
        "",
    ]
    lines += [
        "## Per label (all sources where the label is known)",
        "",
        "| label | n | pos | ROC-AUC | PR-AUC | ECE | review_at | P/R/F1 @review | act_at | P/R/F1 @act |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lab, v in r["labels"].items():
        rv, ac = v.get("at_review", {}), v.get("at_act", {})
        lines.append(
            f"| {lab} | {v['n']} | {v['positives']} | {_f(v['roc_auc'])} | {_f(v['pr_auc'])} | "
            f"{_f(v['ece'], 3)} | "
            f"{_f(rv.get('threshold'), 3)} | {_f(rv.get('precision'), 2)}/{_f(rv.get('recall'), 2)}/"
            f"{_f(rv.get('f1'), 2)} | {_f(ac.get('threshold'), 3)} | {_f(ac.get('precision'), 2)}/"
            f"{_f(ac.get('recall'), 2)}/{_f(ac.get('f1'), 2)} |"
        )
    lines += ["", "![ROC](roc.png) ![ROC Jigsaw](roc_jigsaw.png) ![Reliability](reliability.png)", ""]
    alone = r.get("transformer_alone_sources")
    lines += [
        "## Per source: model vs TF-IDF + logistic regression (same split)",
        "",
    ]
    if alone is not None:
        lx = r.get("lexical", {})
        uses = ", ".join(lx.get("uses_lexical", []))
        lines += [
            "The model stacks a lexical head (TF-IDF + LR, "
            f"{lx.get('features', '?')} n-grams) on the transformer for {uses}; "
            "*transformer alone* is the same artifact with the lexical head switched off. The TF-IDF+LR "
            "column is the separately trained baseline (200k + 200k n-grams).",
            "",
            "| source | metric | model | transformer alone | TF-IDF+LR |",
            "|---|---|---|---|---|",
        ]
    else:
        lines += ["| source | metric | model | TF-IDF+LR |", "|---|---|---|---|"]
    base = r.get("baseline_sources", {})
    for src, v in r["sources"].items():
        for key in ("mean_auc", "any_toxic_auc", *(f"{lab}_auc" for lab in LABELS)):
            if key in v and v[key] is not None:
                mid = f" {_f(alone.get(src, {}).get(key))} |" if alone is not None else ""
                lines.append(f"| {src} | {key} | {_f(v[key])} |{mid} {_f(base.get(src, {}).get(key))} |")
    b = r["bias"]
    lines += [
        "",
        "## Identity-term bias (templates, `toxic` score)",
        "",
        f"{b['n_templates']} sentences; overall AUC {_f(b['overall_auc'])}; subgroup AUC min "
        f"{_f(b['subgroup_auc_min'])}, max {_f(b['subgroup_auc_max'])}, **gap {_f(b['subgroup_auc_gap'])}**; "
        f"BPSN min {_f(b['bpsn_auc_min'])}; BNSP min {_f(b['bnsp_auc_min'])}.",
        "",
        "| identity | subgroup AUC | BPSN | BNSP | mean p(neutral) | mean p(toxic) |",
        "|---|---|---|---|---|---|",
    ]
    for ident, v in b["identities"].items():
        lines.append(
            f"| {ident} | {_f(v['subgroup_auc'])} | {_f(v['bpsn_auc'])} | {_f(v['bnsp_auc'])} | "
            f"{_f(v['mean_neutral'], 3)} | {_f(v['mean_toxic'], 3)} |"
        )
    rb = r["robustness"]
    lines += [
        "",
        "## Robustness to obfuscation (toxic validation messages, recall at review_at)",
        "",
        f"n={rb['n']}, threshold {rb['threshold']:.3f}; clean recall {rb['recall_clean_norm']:.3f} "
        f"(normaliser on), {rb['recall_clean_raw']:.3f} (off).",
        "",
        "| transform | recall (norm) | drop (norm) | recall (raw) | drop (raw) |",
        "|---|---|---|---|---|",
    ]
    for name, v in rb["transforms"].items():
        lines.append(
            f"| {name} | {v['recall_norm']:.3f} | {v['drop_norm'] * 100:+.1f} pt | {v['recall_raw']:.3f} | "
            f"{v['drop_raw'] * 100:+.1f} pt |"
        )
    if "spans" in r:
        s = r["spans"]
        lines += [
            "",
            "## Explanations vs toxic spans (trial set)",
            "",
            f"{s['posts']} posts; occlusion span F1 **{s['span_f1']:.3f}** (all words marked: "
            f"{s['all_words_f1']:.3f}; nothing marked: {s['no_words_f1']:.3f}). Method: {s['method']}.",
        ]
    for key, title in (("int8", "torch"), ("int8_onnx", "ONNX Runtime, per-channel weights")):
        if key not in r:
            continue
        q = r[key]
        lines += [
            "",
            f"## CPU int8 (dynamic quantisation, {title}) vs fp32",
            "",
            f"{q['n']} validation messages; fp32 {q['fp32_msgs_per_s']:.1f} msg/s, int8 "
            f"{q['int8_msgs_per_s']:.1f} msg/s; mean AUC drop {_f(q['mean_auc_drop'])}; max |Δp| "
            f"{q['max_abs_prob_diff']:.3f}, mean |Δp| {_f(q.get('mean_abs_prob_diff'))}.",
            "",
            "| label | fp32 AUC | int8 AUC |",
            "|---|---|---|",
        ]
        for lab, v in q["labels"].items():
            lines.append(f"| {lab} | {_f(v['fp32_auc'])} | {_f(v['int8_auc'])} |")
        if "jigsaw_fp32" in q:
            jf, ji = q["jigsaw_fp32"], q["jigsaw_int8"]
            lines += [
                "",
                f"Jigsaw rows: mean six-label AUC {_f(jf['mean_auc'])} (fp32) vs "
                f"{_f(ji['mean_auc'])} (int8); "
                f"any-toxic {_f(jf['any_toxic_auc'])} vs {_f(ji['any_toxic_auc'])}.",
            ]
    lines.append("")
    return "\n".join(lines)


__all__ = ["evaluate_artifact", "prf"]
