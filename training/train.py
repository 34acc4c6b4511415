"""Fine-tuning: BERT encoder + six-way sigmoid head with a masked BCE loss.

Imbalance: per-label ``pos_weight`` (square root of the negative/positive ratio, capped) and
oversampling of rows carrying rare labels. Batches are length-bucketed with dynamic padding; mixed
precision on CUDA; resumable checkpoints every ``checkpoint_every`` steps; tqdm on stderr; metrics as
JSON lines (and MLflow when installed and a tracking URI is given).
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from moderation.labels import LABELS
from moderation.normalize import normalize_for_scoring
from moderation.scoring.backend import ToxicityModel
from training.data import IDX, Example
from training.obfuscate import TRANSFORMS

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    base_model: str = ""
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 6e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_length: int = 128
    seed: int = 13
    pos_weight_cap: float = 8.0
    #: Extra copies of training rows carrying a rare label (label → total copies incl. the original).
    oversample: dict[str, int] = field(
        default_factory=lambda: {"threat": 6, "severe_toxic": 3, "identity_hate": 2}
    )
    #: Fraction of toxic rows that get one obfuscated copy (kept only if normalising does not undo it).
    augment_fraction: float = 0.25
    #: Add neutral identity-mention sentences (see training/bias.py) and repeat real non-toxic rows that
    #: mention identity terms this many times in total (1 = off): counters identity-term bias.
    identity_neutral: bool = True
    identity_oversample: int = 2
    #: Total copies of every training row from these sources (e.g. ``{"jigsaw": 2}``): the six-label
    #: Jigsaw rows are the only teachers of severe_toxic/obscene/threat/insult, a small share of the mix.
    source_oversample: dict[str, int] = field(default_factory=dict)
    #: Warm start: an artifact directory (or safetensors file) whose weights initialise the model
    #: (continued training); the optimiser and schedule start fresh.
    init_from: str = ""
    checkpoint_every: int = 300
    eval_every: int = 0
    max_steps: int = 0
    #: Wall-clock deadline (UNIX seconds): the learning rate decays linearly to zero by then and
    #: training stops there, whatever the step count — robust to a shared, contended CPU.
    deadline: float = 0.0
    threads: int = 0
    mlflow_uri: str | None = None


# --------------------------------------------------------------------------- data → tensors


def augment(examples: Sequence[Example], fraction: float, seed: int) -> list[Example]:
    """Obfuscated copies of a sample of toxic rows whose normalised text differs from the original."""
    rng = random.Random(seed)
    names = list(TRANSFORMS)
    out: list[Example] = []
    for ex in examples:
        if ex.labels[IDX["toxic"]] < 1 or rng.random() >= fraction:
            continue
        fn = TRANSFORMS[rng.choice(names)]
        text = fn(ex.text, rng)
        if normalize_for_scoring(text) != normalize_for_scoring(ex.text):
            out.append(Example(text, list(ex.labels), list(ex.mask), ex.source + "+obf"))
    return out


def oversample(
    examples: Sequence[Example], factors: dict[str, int], sources: dict[str, int] | None = None
) -> list[Example]:
    """Repeat rows carrying a rare label (``factors``) and rows of favoured sources (``sources``, keyed
    by the source name without an ``+obf`` suffix); the larger factor wins."""
    out = list(examples)
    sources = sources or {}
    for ex in examples:
        copies = max(
            (f for lab, f in factors.items() if ex.mask[IDX[lab]] and ex.labels[IDX[lab]] >= 1), default=1
        )
        copies = max(copies, sources.get(ex.source.split("+", 1)[0], 1))
        out.extend([ex] * (copies - 1))
    return out


def load_initial_weights(model: ToxicityModel, path: str | Path) -> None:
    """Load an artifact's weights (any float dtype) into ``model`` for continued training."""
    from safetensors.torch import load_file

    from moderation.scoring.artifact import WEIGHTS

    p = Path(path)
    file = p / WEIGHTS if p.is_dir() else p
    state = load_file(str(file))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{file}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    log.info("initialised from %s", file)


def identity_rows(examples: Sequence[Example], cfg: TrainConfig) -> list[Example]:
    """Extra non-toxic rows mentioning identities: templated neutral sentences and repeats of real ones."""
    import re

    from training.bias import TRAIN_IDENTITIES, identity_neutral_examples

    out: list[Example] = []
    if cfg.identity_neutral:
        for text, labels in identity_neutral_examples():
            out.append(Example(text, [labels[k] for k in LABELS], [1.0] * len(LABELS), "identity_neutral"))
    if cfg.identity_oversample > 1:
        pattern = re.compile(r"\b(" + "|".join(re.escape(i) for i in TRAIN_IDENTITIES) + r")\b", re.I)
        for ex in examples:
            clean = all(ex.labels[j] == 0 for j in range(len(LABELS)) if ex.mask[j]) and ex.mask[IDX["toxic"]]
            if clean and pattern.search(ex.text):
                out.extend([ex] * (cfg.identity_oversample - 1))
    return out


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    enc = tokenizer(
        [normalize_for_scoring(t) or "[UNK]" for t in texts],
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [list(x) for x in enc["input_ids"]]


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50
) -> list[list[int]]:
    """Shuffle, then sort within pools of ``pool`` batches by length, cut, and shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * pool
    for s in range(0, len(order), span):
        chunk = sorted(order[s : s + span], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    return ids, mask


def masked_bce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits, targets, reduction="none", pos_weight=pos_weight
    )
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def pos_weights(examples: Sequence[Example], cap: float) -> torch.Tensor:
    labels = np.array([e.labels for e in examples], dtype=np.float64)
    mask = np.array([e.mask for e in examples], dtype=np.float64)
    pos = (labels * mask).sum(0)
    neg = ((1 - labels) * mask).sum(0)
    w = np.sqrt(np.maximum(neg, 1) / np.maximum(pos, 1))
    return torch.tensor(np.clip(w, 1.0, cap), dtype=torch.float32)


# --------------------------------------------------------------------------- predictions


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    seqs: Sequence[list[int]],
    device: torch.device,
    batch_tokens: int = 8192,
    desc: str = "predict",
) -> np.ndarray:
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = np.zeros((len(seqs), len(LABELS)), dtype=np.float32)
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) + 1) * len(seqs[i]) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    use_amp = device.type == "cuda"
    for b in tqdm(batches, desc=desc, file=sys.stderr, leave=False, mininterval=5):
        ids, mask = collate([seqs[i] for i in b])
        with torch.autocast(device_type=device.type, enabled=use_amp):
            logits = model(ids.to(device), mask.to(device)).float().cpu().numpy()
        out[b] = logits
    return out


# --------------------------------------------------------------------------- the loop


class MetricsLog:
    def __init__(self, path: Path, mlflow_uri: str | None, params: dict[str, Any]) -> None:
        self.path = path
        self._mlflow: Any = None
        if mlflow_uri:
            try:
                import mlflow  # type: ignore[import-not-found]

                mlflow.set_tracking_uri(mlflow_uri)
                mlflow.start_run()
                mlflow.log_params({k: str(v)[:200] for k, v in params.items()})
                self._mlflow = mlflow
            except ImportError:
                log.warning("mlflow not installed; metrics go to %s only", path)

    def log(self, step: int, **values: float) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        if self._mlflow is not None:
            self._mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=step)

    def close(self) -> None:
        if self._mlflow is not None:
            self._mlflow.end_run()


def train(
    train_rows: Sequence[Example],
    valid_rows: Sequence[Example],
    tokenizer: Any,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    device: torch.device | None = None,
) -> ToxicityModel:
    """Fine-tune and return the model (best-effort resumes from ``run_dir/checkpoint.pt``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)

    rows = list(train_rows) + augment(train_rows, cfg.augment_fraction, cfg.seed)
    rows = oversample(rows, cfg.oversample, cfg.source_oversample) + identity_rows(train_rows, cfg)
    t0 = time.time()
    seqs = encode(tokenizer, [e.text for e in rows], cfg.max_length)
    targets = torch.tensor([e.labels for e in rows], dtype=torch.float32)
    masks = torch.tensor([e.mask for e in rows], dtype=torch.float32)
    lengths = [len(s) for s in seqs]
    log.info(
        "encoded %d training rows in %.1fs (mean %.1f tokens)",
        len(rows),
        time.time() - t0,
        sum(lengths) / max(1, len(lengths)),
    )
    # A fixed validation-loss sample keeps periodic evaluation cheap on CPU.
    vsample = random.Random(cfg.seed).sample(list(valid_rows), k=min(1500, len(valid_rows)))
    vseqs = encode(tokenizer, [e.text for e in vsample], cfg.max_length)
    vtargets = torch.tensor([e.labels for e in vsample], dtype=torch.float32)
    vmasks = torch.tensor([e.mask for e in vsample], dtype=torch.float32)

    pw = pos_weights(rows, cfg.pos_weight_cap).to(device)
    model = ToxicityModel.from_base(cfg.base_model, len(LABELS))
    if cfg.init_from:
        load_initial_weights(model, cfg.init_from)
    model = model.to(device)
    head = {n for n, _ in model.named_parameters() if n.startswith("classifier")}
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [
                p for n, p in model.named_parameters() if n not in head and not any(x in n for x in no_decay)
            ],
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [
                p for n, p in model.named_parameters() if n not in head and any(x in n for x in no_decay)
            ],
            "lr": cfg.lr,
            "weight_decay": 0.0,
        },
        {
            "params": [p for n, p in model.named_parameters() if n in head],
            "lr": cfg.head_lr,
            "weight_decay": 0.0,
        },
    ]
    opt = torch.optim.AdamW(groups)
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = max(1, int(steps_per_epoch * cfg.epochs))
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    warm = max(1, int(total * cfg.warmup))

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        by_steps = (total - step) / max(1, total - warm)
        if cfg.deadline and decay_from is not None:
            by_time = (cfg.deadline - time.time()) / max(1.0, cfg.deadline - decay_from)
            return max(0.0, min(by_steps, by_time))
        return max(0.0, by_steps)

    decay_from: float | None = None

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    step = 0
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        rng.setstate(state["rng"])
        log.info("resumed from %s at step %d", ckpt, step)
    metrics = MetricsLog(
        run_dir / "metrics.jsonl",
        cfg.mlflow_uri,
        {**asdict(cfg), "train_rows": len(rows), "total_steps": total},
    )
    (run_dir / "train_config.json").write_text(
        json.dumps(
            {**asdict(cfg), "total_steps": total, "train_rows": len(rows), "pos_weight": pw.tolist()},
            indent=2,
        )
    )

    def save_checkpoint() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "rng": rng.getstate(),
            },
            tmp,
        )
        tmp.replace(ckpt)

    def batches_from(step: int) -> Iterator[list[int]]:
        epoch_rng = random.Random(cfg.seed)
        done = 0
        while True:
            for b in bucketed_batches(lengths, cfg.batch_size, epoch_rng):
                if done >= step:
                    yield b
                done += 1

    model.train()
    bar = tqdm(total=total, initial=step, desc="train", file=sys.stderr, mininterval=10, dynamic_ncols=True)
    running = 0.0
    started = time.time()
    for b in batches_from(step):
        if step >= total or (cfg.deadline and time.time() >= cfg.deadline):
            break
        if decay_from is None and step >= warm:
            decay_from = time.time()
        ids, mask = collate([seqs[i] for i in b])
        ids, mask = ids.to(device), mask.to(device)
        y, m = targets[b].to(device), masks[b].to(device)
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            logits = model(ids, mask)
        loss = masked_bce(logits.float(), y, m, pw)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        sched.step()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        if step % 50 == 0:
            metrics.log(
                step,
                train_loss=running,
                lr=sched.get_last_lr()[0],
                rows_per_s=(step * cfg.batch_size) / max(1e-9, time.time() - started),
            )
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            save_checkpoint()
        if cfg.eval_every and step % cfg.eval_every == 0:
            vlogits = torch.from_numpy(predict_logits(model, vseqs, device, desc="valid-loss"))
            vloss = masked_bce(vlogits, vtargets, vmasks).item()
            metrics.log(step, valid_loss=vloss)
            model.train()
    bar.close()
    save_checkpoint()
    vlogits = torch.from_numpy(predict_logits(model, vseqs, device, desc="valid-loss"))
    metrics.log(step, valid_loss=masked_bce(vlogits, vtargets, vmasks).item(), final=1)
    metrics.close()
    model.eval()
    return model
