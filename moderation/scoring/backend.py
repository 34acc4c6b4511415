"""TorchScorer: the real model backend (the only core module importing torch/transformers).

Loads a model artifact (see ``artifact.py``), normalises each text, tokenises it, scores texts longer
than the model's window in overlapping windows (max per label), batches internally by length, and
runs on CUDA in fp16/bf16 when available, CPU fp32 otherwise, or CPU int8 (dynamic quantisation of
the linear layers, in torch or — ``engine="onnx"`` — in ONNX Runtime) on request.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from moderation.normalize import normalize_for_scoring
from moderation.scoring.artifact import (
    CONFIG,
    WEIGHTS,
    ArtifactError,
    ModelCard,
    check_artifact,
    default_model_path,
    write_card,
)
from moderation.scoring.lexical import LexicalHead

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]

__all__ = [
    "ArtifactError",
    "Explanation",
    "TorchScorer",
    "ToxicityModel",
    "default_model_path",
    "save_artifact",
]


Engine = Literal["torch", "onnx"]


#: Linear layers that int8 dynamic quantisation leaves in fp32. The first layer's FFN output
#: projection reads GELU activations with a few large outliers; one per-tensor int8 scale for them
#: rounds the rest away. Quantising it anyway cost the Jigsaw validation split 0.059 threat AUC and
#: 0.011 mean six-label AUC (mean |Δp| 0.014 vs fp32); keeping it fp32 (1/18 of the encoder's FLOPs)
#: brings that to 0.006 / 0.001 (mean |Δp| 0.009). No other single layer mattered (docs/MODEL.md).
INT8_KEEP_FP32 = frozenset({"encoder.layer.0.output.dense"})


def int8_layers(encoder: nn.Module) -> set[str]:
    """Names of the encoder's linear layers to quantise (all but ``INT8_KEEP_FP32``)."""
    return {
        name
        for name, module in encoder.named_modules()
        if isinstance(module, nn.Linear) and name not in INT8_KEEP_FP32
    }


def _onnx_node_prefix(module_name: str) -> str:
    """The ONNX node-name prefix the legacy exporter gives a submodule of ``ToxicityModel.encoder``:
    ``encoder.layer.0.output.dense`` → ``/encoder/encoder/layer.0/output/dense/`` (dots that start a
    ``ModuleList`` index stay dots)."""
    return "/encoder/" + re.sub(r"\.(?!\d)", "/", module_name) + "/"


class _QuietRoot(logging.Filter):
    """On the root logger: drops records logged *on root itself* below ERROR (ORT's quantiser logs its
    per-tensor notes and a "consider pre-processing" hint there). Records from named loggers propagate
    to root's handlers without passing root's filters, so everything else is untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def quantize_onnx(onnx_model: bytes) -> bytes:
    """``onnx_model`` (an ``export_onnx`` graph) with ONNX Runtime int8 dynamic quantisation.

    The encoder's weight MatMuls get per-channel int8 weights and per-call uint8 activations
    (``DynamicQuantizeMatMul`` after ORT's fusion: VNNI kernels where the CPU has them); the layers in
    ``INT8_KEEP_FP32``, the attention score products (no constant weight) and the 6-way head (a Gemm)
    stay fp32, like the torch int8 path. Per-channel weight scales halve the torch path's probability
    shift on the same layers (mean |Δp| 0.0031 vs 0.0079 on 800 Jigsaw comments; BENCHMARKS.md)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(onnx_model)
    matmuls = [n.name for n in model.graph.node if n.op_type == "MatMul"]
    keep = [n for n in matmuls if any(n.startswith(_onnx_node_prefix(m)) for m in INT8_KEEP_FP32)]
    if len(keep) != len(INT8_KEEP_FP32):
        # The exporter's naming changed: quantising a layer we meant to keep would cost AUC silently.
        raise RuntimeError(f"int8: expected {len(INT8_KEEP_FP32)} MatMul nodes to keep fp32, found {keep}")
    # The quantiser turns the head's Gemm into MatMul + Add before quantising: keep it by both names.
    head = [n.name for n in model.graph.node if n.name.startswith("/classifier/")]
    keep += head + [f"{n}_MatMul" for n in head]
    with tempfile.TemporaryDirectory(prefix="chatmod-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_model)
        root = logging.getLogger()
        hint = _QuietRoot()
        root.addFilter(hint)
        try:
            quantize_dynamic(
                src,
                dst,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=keep,
            )
        finally:
            root.removeFilter(hint)
        return dst.read_bytes()


def ort_session(onnx_model: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session on an exported model, with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # ORT's pool threads spin after each run by default. Between model calls this process needs the
    # cores for other things — the worker's event loop (reads, writes, tokenising), a torch model
    # interleaved with this one — and a spinning pool takes them: measured here, a torch int8 pass
    # right after ORT calls took 11.4-12.7 s instead of 5.5-6.2 s, while ORT itself ran at the same
    # speed without spinning (7.2-8.0 s vs 7.7-8.3 s; 200 six-message batches, 2 threads, 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def export_onnx(model: ToxicityModel) -> bytes:
    """``model`` (CPU fp32) as an ONNX graph, in memory.

    Exported with the plain ("eager") attention so ORT's graph optimiser fuses it; ``batch`` and
    ``sequence`` are dynamic axes. Raises ``ImportError`` naming the extra when ORT is missing."""
    import io

    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("engine 'onnx' needs onnxruntime and onnx: pip install 'chatmod[onnx]'") from exc
    config = model.encoder.config
    previous = getattr(config, "_attn_implementation", None)
    config._attn_implementation = "eager"
    buf = io.BytesIO()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(),
                (ids, mask),
                buf,  # type: ignore[arg-type]  # a file-like object works (legacy exporter)
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "logits": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
    finally:
        if previous is not None:
            config._attn_implementation = previous
    return buf.getvalue()


class ToxicityModel(nn.Module):
    """``BertModel`` → masked mean pooling → dropout → ``Linear(hidden, n_labels)`` (logits)."""

    def __init__(self, config: BertConfig, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = config
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, n_labels)

    @classmethod
    def from_base(cls, base_path: str | Path, n_labels: int) -> ToxicityModel:
        """Pretrained encoder from a local directory (offline) and a freshly initialised head."""
        config = BertConfig.from_pretrained(str(base_path), local_files_only=True)
        model = cls(config, n_labels)
        encoder = BertModel.from_pretrained(str(base_path), add_pooling_layer=False, local_files_only=True)
        model.encoder.load_state_dict(encoder.state_dict())
        nn.init.normal_(model.classifier.weight, std=0.02)
        nn.init.zeros_(model.classifier.bias)
        return model

    def pooled(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        if inputs_embeds is not None:
            out = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        else:
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden: torch.Tensor = out.last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.dropout(self.pooled(input_ids, attention_mask)))
        return logits


def read_weights(directory: Path | str) -> dict[str, torch.Tensor]:
    """An artifact's tensors as stored (any dtype); ``ArtifactError`` naming the weights file otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(directory) / WEIGHTS
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(file, f"corrupt weights: {exc}") from exc


def save_artifact(
    directory: Path | str,
    model: ToxicityModel,
    tokenizer: Any,
    card: ModelCard,
    *,
    dtype: torch.dtype = torch.float16,
) -> Path:
    """Write weights (safetensors, ``dtype``), encoder config, tokenizer files and the card."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", dtype=dtype).contiguous()
        for k, v in model.state_dict().items()
        if v.is_floating_point()
    }
    state.update(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not v.is_floating_point()}
    )
    save_file(state, str(d / WEIGHTS), metadata={"format": "pt", "labels": ",".join(card.labels)})
    model.config.to_json_file(str(d / CONFIG))
    tokenizer.save_pretrained(str(d))
    write_card(d, card)
    return d


@dataclass(frozen=True, slots=True)
class Explanation:
    """Per label over threshold: the words whose removal lowered the score most, with the drop."""

    label: str
    score: float
    words: tuple[tuple[str, float], ...]
    #: character (start, end) offsets of each word in the original text, same order as ``words``.
    offsets: tuple[tuple[int, int], ...] = ()


class TorchScorer:
    """Scores texts with a model artifact. Implements ``moderation.ports.TextScorer``."""

    def __init__(
        self,
        model: ToxicityModel,
        tokenizer: Any,
        card: ModelCard,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        quantized: bool = False,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        normalize: bool = True,
        onnx_session: Any = None,
        threads: int | None = None,
        serial_tokens: int = 0,
        onnx_serial_session: Any = None,
        lexical: LexicalHead | None = None,
    ) -> None:
        self._model = model
        #: The artifact's lexical head (TF-IDF + LR stacked per label), or None: the transformer alone.
        self.lexical = lexical
        #: Intra-op threads for a model call; calls of at most ``serial_tokens`` padded tokens run on
        #: one thread instead (CPU), to leave a core to the event loop, Redis and the bot while long
        #: messages still get all threads. Off by default: on the 2-core bench machine it did not pay
        #: (BENCHMARKS.md, run K: onnx goodput at p99 <= 50 ms 9.6 -> 0 msgs/s, int8 12.1 -> 13.7).
        self.threads = threads or torch.get_num_threads()
        self.serial_tokens = serial_tokens if self.threads > 1 and device.type == "cpu" else 0
        self._onnx_serial = onnx_serial_session
        #: ONNX Runtime session running the same weights (``engine="onnx"``), else None (torch eager).
        self._onnx = onnx_session
        self.engine = "onnx" if onnx_session is not None else "torch"
        #: The batcher's estimate of one model call's fixed cost, in tokens: 48 (the batcher's default)
        #: for torch eager; ORT's smaller per-call cost did better at 16 than at 48 in a side-by-side run
        #: (one thread, real message mix; BENCHMARKS.md runs F-H show the padding it saves).
        self.call_overhead_tokens = 16 if onnx_session is not None else 48
        self._tok = tokenizer
        self.card = card
        self.device = device
        self.dtype = dtype
        self.quantized = quantized
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.normalize = normalize
        self.max_length = card.max_length
        self.stride = card.stride

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(
        cls,
        path: Path | str | None = None,
        device: Device = "auto",
        quantize: bool = False,
        *,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        normalize: bool = True,
        threads: int | None = None,
        engine: Engine = "torch",
        serial_tokens: int = 0,
    ) -> TorchScorer:
        """Load an artifact directory (default: the shipped ``models/default``).

        ``device="auto"`` uses CUDA (fp16, or bf16 where supported) when present, CPU fp32 otherwise;
        ``quantize=True`` applies int8 dynamic quantisation to the linear layers (CPU only).
        ``engine="onnx"`` runs CPU inference in ONNX Runtime (the same weights, exported in memory
        at load, ~2 s; needs the ``onnx`` extra): fused layer norms and GELU, less per-call overhead;
        with ``quantize=True`` the exported graph is quantised by ORT (``quantize_onnx``, ~3 s more),
        the fastest CPU path. CUDA keeps the torch engine. ``serial_tokens`` > 0 runs
        model calls of at most that many (padded) tokens on one thread and longer ones on ``threads``.
        Raises ``ArtifactError`` naming the file when the artifact is missing or corrupt.
        """
        d = Path(path) if path is not None else default_model_path()
        card = check_artifact(d)
        try:
            config = BertConfig.from_json_file(str(d / CONFIG))
        except (OSError, ValueError, TypeError) as exc:
            raise ArtifactError(d / CONFIG, f"corrupt encoder config: {exc}") from exc
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(d), local_files_only=True)
        except Exception as exc:  # tokenizers raises bare Exceptions on corrupt files
            raise ArtifactError(d / "tokenizer.json", f"cannot load tokenizer: {exc}") from exc
        model = ToxicityModel(config, len(card.labels))
        state = {k: v.float() if v.is_floating_point() else v for k, v in read_weights(d).items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(d / WEIGHTS, f"weights do not match the config/labels: {exc}") from exc
        model.eval()
        if threads:
            torch.set_num_threads(threads)
        want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if device == "cuda" and not torch.cuda.is_available():
            raise ArtifactError(d, "device='cuda' requested but CUDA is not available")
        if want_cuda and not quantize:
            dev = torch.device("cuda")
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            model = model.to(dev, dtype=dtype)
        else:
            dev, dtype = torch.device("cpu"), torch.float32
            if quantize and engine != "onnx":
                # torch.ao.quantization is deprecated in favour of torchao, which is not a dependency
                # here; the eager dynamic path still works and is what we measure (docs/MODEL.md).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", UserWarning)
                    # The encoder's linear layers only: the 6-way head is tiny and its logits feed the
                    # thresholds directly, so it stays fp32 — and so do the layers in INT8_KEEP_FP32.
                    model.encoder = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                        model.encoder, int8_layers(model.encoder), dtype=torch.qint8
                    )
        if engine not in ("torch", "onnx"):
            raise ValueError(f"engine must be 'torch' or 'onnx', not {engine!r}")
        lexical = LexicalHead.load(d, card.labels)
        session = serial_session = None
        if engine == "onnx":
            if dev.type != "cpu":
                log.warning("engine 'onnx' is for CPU; using torch on %s", dev)
            else:
                n_threads = threads or torch.get_num_threads()
                graph = export_onnx(model)
                if quantize:
                    graph = quantize_onnx(graph)
                session = ort_session(graph, n_threads)
                if serial_tokens > 0 and n_threads > 1:
                    serial_session = ort_session(graph, 1)
        scorer = cls(
            model,
            tokenizer,
            card,
            device=dev,
            dtype=dtype,
            quantized=quantize,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            normalize=normalize,
            onnx_session=session,
            threads=threads,
            serial_tokens=serial_tokens,
            onnx_serial_session=serial_session,
            lexical=lexical,
        )
        log.info(
            "model loaded",
            extra={
                "path": str(d),
                "version": card.version,
                "device": str(dev),
                "dtype": str(dtype),
                "quantized": quantize,
                "engine": scorer.engine,
                "lexical": lexical is not None,
            },
        )
        return scorer

    # ------------------------------------------------------------------ TextScorer protocol

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def version(self) -> str:
        return self.card.version + ("+int8" if self.quantized else "")

    @property
    def thresholds(self) -> dict[str, tuple[float, float]]:
        return {k: (t.review_at, t.act_at) for k, t in self.card.thresholds.items()}

    def prepare(self, text: str) -> str:
        return normalize_for_scoring(text) if self.normalize else text

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token count (with special tokens) of each normalised text — for token-budget batching.

        Texts longer than the window count as the total tokens of all their windows.
        """
        ids = self._encode([self.prepare(t) for t in texts])
        return [sum(len(w) for w in self._windows(x)) if x else 0 for x in ids]

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per-label probabilities for each text, in order. Empty texts score all zeros."""
        return [dict(zip(self.labels, row, strict=True)) for row in self.score_matrix(texts)]

    def score_matrix(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        prepared = [self.prepare(t) for t in texts]
        ids = self._encode(prepared)
        windows: list[list[int]] = []
        owner: list[int] = []
        for i, seq in enumerate(ids):
            if not seq:
                continue
            for w in self._windows(seq):
                windows.append(w)
                owner.append(i)
        probs = self._run(windows)
        n = len(self.labels)
        out = [[0.0] * n for _ in texts]
        for row, i in zip(probs, owner, strict=True):
            cur = out[i]
            for j in range(n):
                if row[j] > cur[j]:
                    cur[j] = row[j]
        out = self._finish(out, prepared)
        log.debug(
            "scored batch",
            extra={
                "texts": len(texts),
                "windows": len(windows),
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return out

    # ------------------------------------------------------------------ internals

    def _finish(self, rows: list[list[float]], prepared: Sequence[str]) -> list[list[float]]:
        """The transformer's per-text probabilities (max over windows) → the artifact's scores: the
        lexical head stacked on when the artifact has one, else unchanged."""
        return self.lexical.combine(rows, prepared) if self.lexical is not None else rows

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids without special tokens; empty list for texts that are empty after normalising."""
        out: list[list[int]] = [[] for _ in texts]
        todo = [(i, t) for i, t in enumerate(texts) if t.strip()]
        if todo:
            enc = self._tok(
                [t for _, t in todo],
                add_special_tokens=False,
                truncation=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )
            for (i, _), seq in zip(todo, enc["input_ids"], strict=True):
                out[i] = list(seq)
        return out

    def _windows(self, seq: list[int]) -> list[list[int]]:
        """Overlapping windows of ``max_length`` tokens (with [CLS]/[SEP]) advancing by ``stride``."""
        cls_id, sep_id = self._tok.cls_token_id, self._tok.sep_token_id
        body = self.max_length - 2
        if len(seq) <= body:
            return [[cls_id, *seq, sep_id]]
        step = min(self.stride, body)
        starts = list(range(0, len(seq) - body + 1, step))
        if starts[-1] + body < len(seq):
            starts.append(len(seq) - body)
        return [[cls_id, *seq[s : s + body], sep_id] for s in starts]

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            longest = max(lengths[i], max((lengths[j] for j in cur), default=0))
            if cur and (len(cur) >= self.batch_size or longest * (len(cur) + 1) > self.max_batch_tokens):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def _collate(self, seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def _logits(self, seqs: Sequence[list[int]]) -> torch.Tensor:
        ids, mask = self._collate(seqs)
        serial = ids.numel() <= self.serial_tokens
        if self._onnx is not None:
            session = self._onnx_serial if serial and self._onnx_serial is not None else self._onnx
            out = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
            return torch.from_numpy(out).float()
        if self.serial_tokens:
            want = 1 if serial else self.threads
            if torch.get_num_threads() != want:
                torch.set_num_threads(want)
        logits: torch.Tensor = self._model(ids, mask)
        return logits.float()

    def _run(self, windows: Sequence[list[int]]) -> list[list[float]]:
        probs: list[list[float]] = [[] for _ in windows]
        for batch in self._batches([len(w) for w in windows]):
            p = torch.sigmoid(self._logits([windows[i] for i in batch])).cpu().tolist()
            for i, row in zip(batch, p, strict=True):
                probs[i] = row
        return probs

    # ------------------------------------------------------------------ explanations

    def explain(
        self,
        text: str,
        *,
        top_k: int = 5,
        labels: Sequence[str] | None = None,
        min_score: float | None = None,
        max_units: int = 96,
    ) -> list[Explanation]:
        """Occlusion: for each label over its review threshold (or ``min_score``), cut each word out in
        turn and rank the words by how much the label's probability falls without them.

        Messages longer than ``max_units`` words are occluded in runs of consecutive words instead,
        so the cost stays bounded (one batched pass over at most ``max_units`` variants)."""
        import re

        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        if not words:
            return []
        base = self.score_matrix([text])[0]
        over = []
        for j, lab in enumerate(self.labels):
            if labels is not None and lab not in labels:
                continue
            default = self.card.thresholds[lab].review_at if lab in self.card.thresholds else 0.5
            if base[j] >= (min_score if min_score is not None else default):
                over.append(j)
        if not over:
            return []
        size = max(1, -(-len(words) // max(1, max_units)))
        units = [(words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)]
        if len(units) > 1:
            scores = self.score_matrix([text[:s] + text[e:] for s, e in units])
        else:
            scores = [[0.0] * len(self.labels)]
        out = []
        for j in over:
            drops = sorted(((base[j] - scores[k][j], k) for k in range(len(units))), key=lambda t: -t[0])
            top = [(d, k) for d, k in drops[:top_k] if d > 0]
            out.append(
                Explanation(
                    label=self.labels[j],
                    score=base[j],
                    words=tuple((text[units[k][0] : units[k][1]], round(d, 4)) for d, k in top),
                    offsets=tuple(units[k] for _, k in top),
                )
            )
        return out

    def word_attributions(self, text: str, label: str) -> list[tuple[int, int, float]]:
        """(start, end, drop) for every word of ``text``: the occlusion attribution for ``label``."""
        import re

        j = self.labels.index(label)
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        if not words:
            return []
        variants = [text] + [text[:s] + text[e:] for s, e in words]
        scores = self.score_matrix(variants)
        base = scores[0][j]
        return [(s, e, base - scores[k + 1][j]) for k, (s, e) in enumerate(words)]


def describe(scorer: TorchScorer) -> dict[str, Any]:
    return {
        "version": scorer.version,
        "labels": list(scorer.labels),
        "device": str(scorer.device),
        "dtype": str(scorer.dtype),
        "quantized": scorer.quantized,
        "engine": scorer.engine,
        "max_length": scorer.max_length,
        "stride": scorer.stride,
        "lexical": scorer.lexical.describe() if scorer.lexical is not None else None,
        "card": json.loads(json.dumps(scorer.card.to_json())),
    }
