"""The text demo: real sentences that ship offline, and a small text encoder trained on them.

The sentences are the one-line summaries of the public functions of NumPy and SciPy ("Compute
the singular value decomposition of a matrix."), labelled by the area of the library they
document (linear algebra, statistics, signal processing, …). They come from the installed
packages' docstrings, so the dataset needs no download; its exact content follows the installed
versions. The small encoder is a 2-block BERT trained on the spot to tell the areas apart,
saved as a Hugging Face directory that shares all-MiniLM-L6-v2's tokenizer.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from demo.vision import torch_threads

AREAS = {
    "linear algebra": ["numpy.linalg", "scipy.linalg"],
    "statistics": ["scipy.stats"],
    "signal processing": ["scipy.signal"],
    "optimization": ["scipy.optimize"],
    "special functions": ["scipy.special"],
    "spatial": ["scipy.spatial", "scipy.spatial.distance"],
    "sparse matrices": ["scipy.sparse", "scipy.sparse.csgraph", "scipy.sparse.linalg"],
    "interpolation": ["scipy.interpolate"],
    "integration": ["scipy.integrate"],
    "fourier transforms": ["numpy.fft", "scipy.fft"],
    "image processing": ["scipy.ndimage"],
}
MIN_WORDS, MAX_CHARS = 4, 300
_SENTENCE_END = re.compile(r"(?<=\.)\s")


@dataclass
class Summary:
    text: str
    area: str
    library: str  # "numpy" or "scipy"
    function: str  # dotted name


def summary_of(name: str, obj: object) -> str | None:
    """The first sentence of ``obj``'s docstring (skipping a signature line), or None."""
    doc = inspect.getdoc(obj) if callable(obj) else None
    if not doc:
        return None
    paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n")]
    first = paragraphs[0]
    if first.startswith(f"{name}(") and len(paragraphs) > 1:
        first = paragraphs[1]
    sentence = _SENTENCE_END.split(first)[0]
    if len(sentence.split()) < MIN_WORDS or len(sentence) > MAX_CHARS:
        return None
    return sentence


def function_summaries() -> list[Summary]:
    """One summary per public function, unique texts, in (area, module, name) order."""
    seen: set[str] = set()
    found = []
    for area, modules in AREAS.items():
        for module_name in modules:
            module = importlib.import_module(module_name)
            for name in sorted(getattr(module, "__all__", dir(module))):
                if name.startswith("_"):
                    continue
                text = summary_of(name, getattr(module, name, None))
                if text is None or text in seen:
                    continue
                seen.add(text)
                found.append(
                    Summary(text, area, module_name.split(".")[0], f"{module_name}.{name}")
                )
    return found


def write_summaries_jsonl(path: str | Path) -> int:
    """The summaries as an upload-format text dataset (``.jsonl``); returns their number."""
    summaries = function_summaries()
    with open(path, "w", encoding="utf-8") as f:
        for s in summaries:
            record = {
                "id": s.function,
                "text": s.text,
                "label": s.area,
                "library": s.library,
                "words": len(s.text.split()),
            }
            f.write(json.dumps(record) + "\n")
    return len(summaries)


@dataclass
class TrainedEncoder:
    directory: Path
    train_accuracy: float
    held_out_accuracy: float


def train_text_encoder(
    directory: Path,
    tokenizer_dir: Path,
    texts: list[str],
    labels: np.ndarray,
    seed: int = 0,
    epochs: int = 5,
    hidden: int = 64,
    max_tokens: int = 48,
    threads: int | None = None,
) -> TrainedEncoder:
    """Train a 2-block BERT (``hidden`` wide) with a classification head to predict ``labels``
    from ``texts`` on a seeded 80% of them, and save it to ``directory`` with the tokenizer of
    ``tokenizer_dir`` (safetensors, loadable offline)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    n_classes = int(labels.max()) + 1
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max(64, max_tokens),
    )
    config.num_labels = n_classes  # a PretrainedConfig setting that BertConfig's signature omits

    def tokens(rows: Iterable[int]) -> dict[str, torch.Tensor]:  # padded to the longest text
        chosen = [texts[i] for i in rows]
        out = tokenizer(chosen, padding=True, truncation=True, max_length=max_tokens)
        return {k: torch.tensor(out[k]) for k in ("input_ids", "attention_mask")}

    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    train, held_out = order[: int(0.8 * len(texts))], order[int(0.8 * len(texts)) :]
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        batch_size = 32
        steps = epochs * math.ceil(len(train) / batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            shuffled = torch.from_numpy(train)[torch.randperm(len(train), generator=generator)]
            for start in range(0, len(shuffled), batch_size):
                index = shuffled[start : start + batch_size]
                logits = model(**tokens(index.tolist())).logits
                loss = F.cross_entropy(logits, y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        model.eval()
        with torch.inference_mode():
            predicted = torch.cat(
                [
                    model(**tokens(range(start, min(start + 256, len(texts))))).logits.argmax(1)
                    for start in range(0, len(texts), 256)
                ]
            )
    correct = (predicted == y).numpy()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return TrainedEncoder(
        directory,
        float(correct[train].mean()),
        float(correct[held_out].mean()) if len(held_out) else math.nan,
    )
