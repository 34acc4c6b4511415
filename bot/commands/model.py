"""``chatmod train``, ``chatmod eval`` and ``chatmod score``.

``score`` is a contract used by external evaluation: JSONL ``{"text": ...}`` in (stdin or --input), one
JSON object ``{label: probability}`` per input line out (stdout or --output), in order; progress and
warnings on stderr only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import typer

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"


# --------------------------------------------------------------------------- score: input parsing


class InvalidLine(ValueError):
    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno


@dataclass(frozen=True, slots=True)
class InputLine:
    lineno: int
    text: str
    empty: bool = False
    invalid: str | None = None


def parse_lines(lines: Iterable[str], *, skip_invalid: bool = False) -> Iterator[InputLine]:
    """One ``InputLine`` per input line. A blank line is an empty text (all-zero scores, flagged).

    Invalid JSON, or an object without a string ``"text"``, raises ``InvalidLine`` naming the line —
    or, with ``skip_invalid``, yields an all-zero placeholder so the output stays aligned with the input.
    """
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            yield InputLine(lineno, "", empty=True)
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError('expected a JSON object with a "text" field')
            text = obj["text"]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise ValueError(f'"text" must be a string, not {type(text).__name__}')
        except (json.JSONDecodeError, KeyError, ValueError) as exc:
            message = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            if not skip_invalid:
                raise InvalidLine(lineno, message) from exc
            yield InputLine(lineno, "", empty=True, invalid=message)
            continue
        yield InputLine(lineno, text, empty=not text.strip())


def read_input(path: Path | None) -> str:
    """The whole input as text: stdin for None/"-". Invalid UTF-8 becomes U+FFFD, a BOM is dropped."""
    if path is None or str(path) == "-":
        buf = getattr(sys.stdin, "buffer", None)
        raw = buf.read() if buf is not None else sys.stdin.read().encode("utf-8", "replace")
    else:
        raw = path.read_bytes()
    return raw.decode("utf-8-sig", errors="replace")


def split_lines(data: str) -> list[str]:
    """Lines ended by '\n' only (JSON strings may hold a raw U+2028, which str.splitlines would split)."""
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    return lines


def score_lines(
    scorer: Any,
    lines: Iterable[str],
    fout: IO[str],
    *,
    skip_invalid: bool = False,
    chunk: int = 256,
    with_flags: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Score every line into ``fout``, one JSON object per line, in order."""
    from tqdm import tqdm

    items = list(parse_lines(lines, skip_invalid=skip_invalid))
    labels = list(scorer.labels)
    zero = dict.fromkeys(labels, 0.0)
    counts = {"lines": len(items), "empty": 0, "invalid": 0}
    bar = tqdm(
        total=len(items), desc="score", unit="msg", file=sys.stderr, disable=not progress, mininterval=2
    )
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        todo = [it for it in part if not it.empty]
        scored = iter(scorer.score_batch([it.text for it in todo])) if todo else iter(())
        for it in part:
            if it.invalid is not None:
                counts["invalid"] += 1
                log.warning("line %d: invalid input (%s); wrote all-zero scores", it.lineno, it.invalid)
            elif it.empty:
                counts["empty"] += 1
                log.warning("line %d: empty text; wrote all-zero scores", it.lineno)
            row = dict(zero) if it.empty else {k: float(v) for k, v in next(scored).items()}
            if with_flags and it.empty:
                row["_flags"] = ["invalid" if it.invalid is not None else "empty"]  # type: ignore[assignment]
            fout.write(json.dumps(row, ensure_ascii=False) + "\n")
        bar.update(len(part))
    bar.close()
    fout.flush()
    return counts


# --------------------------------------------------------------------------- commands


ModelDir = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="Model artifact directory (default: the shipped models/default)."),
]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]


def _load_scorer(
    model: Path | None, device: str, int8: bool, batch_size: int = 32, engine: str = "torch"
) -> Any:
    from moderation.scoring.artifact import ArtifactError
    from moderation.scoring.backend import TorchScorer

    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("device must be auto, cpu or cuda")
    if engine not in ("torch", "onnx"):
        raise typer.BadParameter("engine must be torch or onnx", param_hint="--engine")
    try:
        return TorchScorer.load(
            model,
            device=device,  # type: ignore[arg-type]
            quantize=int8,
            batch_size=batch_size,
            engine=engine,  # type: ignore[arg-type]
        )
    except ArtifactError as exc:
        typer.echo(f"error: model artifact: {exc}", err=True)
        raise typer.Exit(3) from exc


def score(
    input: Annotated[Path | None, typer.Option("--input", "-i", help="JSONL input (default stdin).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL output (default stdout).")
    ] = None,
    model: ModelDir = None,
    device: Device = "auto",
    int8: Annotated[bool, typer.Option("--int8", help="CPU int8 dynamic quantisation.")] = False,
    engine: Annotated[
        str, typer.Option(help="CPU engine: torch or onnx (ONNX Runtime; with --int8 the fastest CPU path).")
    ] = "torch",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Write all-zero scores for invalid lines instead of failing."),
    ] = False,
    flags: Annotated[
        bool,
        typer.Option(
            "--flags",
            help='Add "_flags" to rows of empty/invalid lines (off by default: rows hold labels only).',
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score JSONL {"text": ...} lines: one JSON object of label → probability per line, in order."""
    if input is not None and str(input) != "-" and not input.is_file():
        typer.echo(f"error: input file not found: {input}", err=True)
        raise typer.Exit(2)
    lines = split_lines(read_input(input))
    try:  # validate before loading the model: a bad line fails fast and nothing is written
        list(parse_lines(lines, skip_invalid=skip_invalid))
    except InvalidLine as exc:
        typer.echo(f"error: invalid input at {exc} (use --skip-invalid to write zeros instead)", err=True)
        raise typer.Exit(2) from exc
    scorer = _load_scorer(model, device, int8, batch_size, engine)
    started = time.perf_counter()
    opts: dict[str, Any] = {"skip_invalid": skip_invalid, "with_flags": flags, "progress": not quiet}
    if output is None or str(output) == "-":
        counts = score_lines(scorer, lines, sys.stdout, **opts)
    else:
        with output.open("w", encoding="utf-8") as fout:
            counts = score_lines(scorer, lines, fout, **opts)
    log.info(
        "scored %d lines (%d empty, %d invalid) with %s in %.1fs",
        counts["lines"],
        counts["empty"],
        counts["invalid"],
        scorer.version,
        time.perf_counter() - started,
    )


def train(
    data: Annotated[Path, typer.Option(help="Shared data directory (see DATA.md).")] = DEFAULT_DATA,
    out: Annotated[Path, typer.Option(help="Artifact directory to write.")] = REPO_ROOT
    / "models"
    / "default",
    run_dir: Annotated[Path, typer.Option(help="Checkpoints, metrics, plots.")] = REPO_ROOT
    / "runs"
    / "train",
    extra: Annotated[
        list[Path] | None,
        typer.Option(
            help="More data by path (repeatable): Jigsaw train.csv, Civil Comments CSV, JSONL "
            "(moderation lists or moderator verdicts). Format is detected from the columns."
        ),
    ] = None,
    civil_threshold: Annotated[float, typer.Option(help="Civil Comments score → label threshold.")] = 0.5,
    epochs: float = 1.5,
    batch_size: int = 32,
    lr: float = 8e-5,
    max_length: int = 128,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (0: no limit).")] = 0,
    time_budget: Annotated[
        float, typer.Option(help="Minutes of training; the LR decays to zero by then (0: no limit).")
    ] = 0.0,
    limit: Annotated[int | None, typer.Option(help="Rows per source (smoke runs).")] = None,
    fp32: Annotated[bool, typer.Option("--fp32", help="Save fp32 weights (default fp16).")] = False,
    finalize_only: Annotated[
        bool, typer.Option(help="Export the run's checkpoint without training.")
    ] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip validation/calibration.")] = False,
    mlflow_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (when installed).")] = None,
    threads: int = 0,
    version: str | None = None,
    init_from: Annotated[
        Path | None,
        typer.Option(help="Continue training from this artifact's weights (fresh optimiser and schedule)."),
    ] = None,
    source_oversample: Annotated[
        list[str] | None,
        typer.Option(help="SOURCE=N: repeat that source's training rows N times in all (repeatable)."),
    ] = None,
    warmup: Annotated[float, typer.Option(help="Warm-up share of the steps.")] = 0.06,
    seed: Annotated[
        int, typer.Option(help="Seed of the head init, batch order and augmentation (not of the split).")
    ] = 13,
    lexical: Annotated[
        bool, typer.Option(help="Stack the lexical head (TF-IDF + LR) on the model (needs evaluation).")
    ] = True,
) -> None:
    """Fine-tune the MiniLM backbone on the shared data (+ --extra) and write a model artifact."""
    import torch

    from training.data import load_by_path
    from training.pipeline import (
        attach_in_place,
        base_model_path,
        finalize,
        load_tokenizer,
        prepare_split,
        run,
    )
    from training.train import TrainConfig

    favoured: dict[str, int] = {}
    for item in source_oversample or []:
        name, sep, n = item.partition("=")
        if not sep or not n.isdigit() or int(n) < 1:
            raise typer.BadParameter(
                f"expected SOURCE=N with N >= 1, got {item!r}", param_hint="--source-oversample"
            )
        favoured[name.strip()] = int(n)
    if init_from is not None and not (init_from / "model.safetensors").is_file() and not init_from.is_file():
        raise typer.BadParameter(f"no model.safetensors in {init_from}", param_hint="--init-from")
    extra_rows = []
    for path in extra or []:
        extra_rows.extend(load_by_path(path, civil_threshold=civil_threshold))
    cfg = TrainConfig(
        base_model=base_model_path(),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_length=max_length,
        max_steps=max_steps,
        mlflow_uri=mlflow_uri,
        threads=threads,
        deadline=time.time() + time_budget * 60 if time_budget else 0.0,
        warmup=warmup,
        seed=seed,
        source_oversample=favoured,
        init_from=str(init_from) if init_from else "",
    )
    dtype = torch.float32 if fp32 else torch.float16
    if finalize_only:
        from training.export import load_checkpoint_model, load_run_config

        split = prepare_split(data, run_dir, extra_rows, limit)
        model = load_checkpoint_model(run_dir, cfg.base_model)
        saved = load_run_config(run_dir)
        saved.base_model = cfg.base_model
        wall = None
        log_path = run_dir / "metrics.jsonl"
        if log_path.is_file():  # first to last logged step: the run's wall time, restarts included
            times = [json.loads(x)["time"] for x in log_path.read_text().splitlines() if x.strip()]
            wall = max(times) - min(times) if len(times) > 1 else None
        path = finalize(
            model,
            load_tokenizer(cfg.base_model),
            split,
            saved,
            run_dir,
            out,
            train_wall_s=wall,
            version=version,
            evaluate=not no_eval,
            dtype=dtype,
        )
        if lexical and not no_eval:
            path = attach_in_place(path, split)
    else:
        path = run(
            data,
            run_dir,
            out,
            cfg,
            extra=extra_rows,
            limit=limit,
            version=version,
            evaluate=not no_eval,
            dtype=dtype,
            lexical=lexical,
        )
    typer.echo(str(path))


def evaluate(
    model: ModelDir = None,
    data: Annotated[Path, typer.Option(help="Shared data directory.")] = DEFAULT_DATA,
    out: Annotated[
        Path | None, typer.Option(help="Report directory (Markdown + PNGs); default MODEL/eval.")
    ] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Training run dir whose split to reuse.")] = None,
    device: Device = "auto",
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Also measure the int8 model.")] = True,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Train and compare the TF-IDF + LR baseline.")
    ] = True,
    limit: Annotated[int | None, typer.Option(help="Rows per source (smoke runs).")] = None,
) -> None:
    """Evaluate a model artifact on the validation split: AUCs, thresholds, calibration, bias,
    robustness under obfuscation, explanation span F1, int8 vs fp32. Writes report.md + PNGs."""
    from moderation.scoring.artifact import default_model_path
    from training.evaluate import evaluate_artifact

    scorer = _load_scorer(model, device, False)
    out = out or (model or default_model_path()) / "eval"
    report = evaluate_artifact(
        scorer, data, out, run_dir=run_dir, int8=int8, baseline=baseline, limit=limit, model_dir=model
    )
    typer.echo(str(report))


def soup(
    models: Annotated[
        list[Path], typer.Argument(help="Two or more artifact directories trained on the same split.")
    ],
    out: Annotated[Path, typer.Option(help="Artifact directory to write.")],
    run_dir: Annotated[
        Path,
        typer.Option(help="A run dir of the ingredients' split (its split.pkl is reused) for the plots."),
    ],
    data: Annotated[Path, typer.Option(help="Shared data directory (see DATA.md).")] = DEFAULT_DATA,
    weight: Annotated[
        list[float] | None,
        typer.Option("--weight", help="Mixing weight per model, in order (repeatable; default uniform)."),
    ] = None,
    version: str | None = None,
    fp32: Annotated[bool, typer.Option("--fp32", help="Save fp32 weights (default fp16).")] = False,
) -> None:
    """Average fine-tuned artifacts' weights (a model soup), then calibrate, pick thresholds and write an
    artifact with its card as `chatmod train` does. One model's inference cost."""
    import torch

    from moderation.scoring.artifact import ArtifactError
    from training.pipeline import base_model_path, finalize, load_tokenizer, prepare_split
    from training.soup import make_soup, soup_shares
    from training.train import TrainConfig

    base = base_model_path()
    try:
        shares = soup_shares(len(models), weight)  # before the split is loaded
        split = prepare_split(data, run_dir)
        model, info = make_soup(models, split, base, shares)
    except ArtifactError as exc:
        typer.echo(f"error: model artifact: {exc}", err=True)
        raise typer.Exit(3) from exc
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    path = finalize(
        model,
        load_tokenizer(base),
        split,
        TrainConfig(base_model=base, max_length=info["max_length"]),
        run_dir,
        out,
        train_wall_s=info.get("train_wall_s"),
        train_device=info["train_device"],
        version=version,
        dtype=torch.float32 if fp32 else torch.float16,
        extra={"training": {"soup": info}},
    )
    typer.echo(str(path))


def lexical(
    model: Annotated[Path, typer.Argument(help="A fine-tuned artifact directory (trained on this split).")],
    out: Annotated[Path, typer.Option(help="Artifact directory to write (may be MODEL itself).")],
    data: Annotated[Path, typer.Option(help="Shared data directory (see DATA.md).")] = DEFAULT_DATA,
    run_dir: Annotated[
        Path | None, typer.Option(help="A run dir whose split.pkl to reuse (default: rebuild the split).")
    ] = None,
    version: str | None = None,
    max_features: Annotated[int, typer.Option(help="Most n-grams per analyzer (word, char).")] = 50_000,
) -> None:
    """Fit the lexical head (TF-IDF + logistic regression on the training split, stacked per label on
    validation) and write MODEL with it, re-chosen thresholds and stacked metrics (docs/MODEL.md)."""
    from moderation.scoring.artifact import ArtifactError
    from training.data import load_shared
    from training.lexical import attach_lexical
    from training.pipeline import prepare_split

    try:
        split = prepare_split(data, run_dir) if run_dir is not None else load_shared(data)
        path, summary = attach_lexical(model, split, out, version=version, max_features=max_features)
    except ArtifactError as exc:
        typer.echo(f"error: model artifact: {exc}", err=True)
        raise typer.Exit(3) from exc
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps({"path": str(path), **summary}))


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("train")(train)
    app.command("soup")(soup)
    app.command("lexical")(lexical)
    app.command("eval")(evaluate)
