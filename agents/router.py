"""The routing tier: chat text to an intent kind by embedding similarity against a registry of kinds."""
from __future__ import annotations

import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import RegistryError

if TYPE_CHECKING:
    from memory.embedder import Embedder

log = structlog.get_logger(__name__)

# Chosen by 25 random splits of the pooled phrasings (10 examples per kind, the rest held out):
# the mean of a kind's 5 nearest examples beat the single nearest one (0.81 vs 0.69 in-scope
# accuracy at equal out-of-scope rejection) because one lexically close example of the wrong
# kind ("end the pause" vs "pause") no longer decides alone; blending in the description added
# another ~2 points. See bench/bench_router.py for the figures on tests/data/routing.jsonl.
TOP_K = 5
DESCRIPTION_WEIGHT = 0.2
# On tests/data/routing.jsonl everyday off-topic requests score under 0.22 (one outlier, "what's
# the news today", 0.33) and in-scope ones mostly 0.3-0.7; any threshold in 0.21-0.24 gives the
# same rejection, and the cross-validated optimum was 0.25 +- 0.02.
DEFAULT_THRESHOLD = 0.24
_SCORE_CHUNK = 512
_PROGRESS_ABOVE = 500  # examples; below this, embedding takes well under a second and a bar is noise


class IntentKind(BaseModel):
    """One thing the operator can ask for: how to recognise it and which workflow it starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    workflow: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    examples: list[str] = Field(min_length=2)
    params: list[str] = Field(default_factory=list)


class KindRegistry(BaseModel):
    """The kinds the router chooses from, in file order; names are unique."""

    model_config = ConfigDict(frozen=True)

    kinds: list[IntentKind] = Field(min_length=1)
    source: Path | None = None

    @classmethod
    def from_kinds(cls, kinds: Sequence[IntentKind], *, source: Path | None = None) -> KindRegistry:
        """Build a registry; raises RegistryError on a duplicate name."""
        seen: set[str] = set()
        where = f"{source}: " if source else ""
        for kind in kinds:
            if kind.name in seen:
                message = f"{where}kind {kind.name!r} is defined twice"
                raise RegistryError(message, path=source, kind=kind.name)
            seen.add(kind.name)
        if not kinds:
            raise RegistryError(f"{where}no kinds defined (expected [[kind]] tables)", path=source)
        return cls(kinds=list(kinds), source=source)

    @classmethod
    def load(cls, path: str | Path) -> KindRegistry:
        """Read a TOML file of `[[kind]]` tables; raises RegistryError naming the file and the kind."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise RegistryError(f"{path}: cannot read kinds file: {e.strerror or e}", path=path) from e
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"{path}: not valid TOML: {e}", path=path) from e
        tables = raw.get("kind", [])
        if not isinstance(tables, list):
            raise RegistryError(f"{path}: 'kind' must be an array of tables ([[kind]])", path=path)
        kinds: list[IntentKind] = []
        for index, table in enumerate(tables, start=1):
            label = table.get("name") if isinstance(table, dict) else None
            label = repr(label) if isinstance(label, str) else f"#{index}"
            try:
                kinds.append(IntentKind.model_validate(table))
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'kind'}: {err['msg']}" for err in e.errors()
                )
                raise RegistryError(f"{path}: kind {label}: {problems}", path=path, kind=label) from e
        return cls.from_kinds(kinds, source=path)

    def names(self) -> list[str]:
        return [kind.name for kind in self.kinds]

    def get(self, name: str) -> IntentKind:
        """The kind called `name`; raises KeyError."""
        for kind in self.kinds:
            if kind.name == name:
                return kind
        raise KeyError(name)


class RouteResult(BaseModel):
    """The router's answer: a kind when confident, else None and the closest kinds to offer as buttons."""

    model_config = ConfigDict(frozen=True)

    kind: str | None
    confidence: float
    runners_up: list[tuple[str, float]]
    in_scope: bool


def default_registry_path() -> Path:
    """The kinds file shipped with opsos (agents/kinds.toml)."""
    return Path(__file__).resolve().parent / "kinds.toml"


class Router:
    """Classifies text against every kind's example phrasings; build once per process, route many times.

    A kind's score is the mean cosine similarity of the text to that kind's `top_k` nearest examples,
    blended with its similarity to the kind's description. Below `threshold` the router does not
    guess: the result is out of scope and carries the closest kinds to offer instead.
    """

    def __init__(
        self,
        registry: KindRegistry,
        embedder: Embedder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        top_k: int = TOP_K,
        description_weight: float = DESCRIPTION_WEIGHT,
        runners_up: int = 2,
        batch_size: int = 64,
    ) -> None:
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if not 0.0 <= description_weight <= 1.0:
            raise ValueError("description_weight must lie between 0 and 1")
        self.registry = registry
        self.embedder = embedder
        self.threshold = threshold
        self.description_weight = description_weight
        self.n_runners_up = runners_up
        self.batch_size = batch_size
        self._names = registry.names()
        examples = [text for kind in registry.kinds for text in kind.examples]
        counts = np.array([len(kind.examples) for kind in registry.kinds], dtype=np.intp)
        # Each example gets a (kind, slot) cell in a kinds x max-examples grid, so per-kind top-k is
        # one np.partition over the last axis however unevenly the operator filled the kinds.
        self._kind_of = np.repeat(np.arange(len(counts)), counts)
        self._slot_of = np.concatenate([np.arange(n) for n in counts])
        self._width = int(counts.max())
        self._k = min(top_k, self._width)
        self._k_per_kind = np.minimum(counts, self._k).astype(np.float32)
        started = time.perf_counter()
        big = len(examples) > _PROGRESS_ABOVE
        if big:
            log.info("router.embedding", kinds=len(self._names), examples=len(examples))
        self._examples = embedder.embed(examples, batch_size=batch_size, progress=big)
        self._descriptions = embedder.embed(
            [kind.description for kind in registry.kinds], batch_size=batch_size, progress=False
        )
        log.info(
            "router.ready",
            kinds=len(self._names),
            examples=len(examples),
            seconds=round(time.perf_counter() - started, 3),
        )

    @property
    def kinds(self) -> list[str]:
        return list(self._names)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Per-kind scores for already-embedded texts: shape (len(vectors), number of kinds)."""
        out = np.empty((len(vectors), len(self._names)), dtype=np.float32)
        # Chunked so a --file of many thousand lines never builds a grid larger than a few MB per row block.
        for lo in range(0, len(vectors), _SCORE_CHUNK):
            out[lo : lo + _SCORE_CHUNK] = self._score_block(vectors[lo : lo + _SCORE_CHUNK])
        return out

    def _score_block(self, vectors: np.ndarray) -> np.ndarray:
        grid = np.full((len(vectors), len(self._names), self._width), -np.inf, dtype=np.float32)
        grid[:, self._kind_of, self._slot_of] = vectors @ self._examples.T
        top = np.partition(grid, self._width - self._k, axis=2)[:, :, self._width - self._k :]
        # Padding cells (-inf) only reach the top k of kinds with fewer than k examples; count them out.
        by_examples = np.where(np.isfinite(top), top, 0.0).sum(axis=2) / self._k_per_kind
        by_description = vectors @ self._descriptions.T
        w = self.description_weight
        return (1.0 - w) * by_examples + w * by_description

    def route(self, text: str) -> RouteResult:
        """Route one request."""
        return self.route_many([text])[0]

    def route_many(self, texts: Sequence[str]) -> list[RouteResult]:
        """Route many requests with one batched embedding."""
        if not texts:
            return []
        scores = self.scores(self.embedder.embed(texts, batch_size=self.batch_size))
        return [self._result(row) for row in scores]

    def _result(self, row: np.ndarray) -> RouteResult:
        take = min(len(row), self.n_runners_up + 1)
        # argpartition keeps this linear in the number of kinds; only the top few get sorted.
        top = np.argpartition(-row, take - 1)[:take]
        top = top[np.argsort(-row[top], kind="stable")]
        confidence = round(float(row[top[0]]), 4)
        ranked = [(self._names[int(i)], round(float(row[i]), 4)) for i in top]
        if confidence >= self.threshold:
            return RouteResult(kind=ranked[0][0], confidence=confidence, runners_up=ranked[1:], in_scope=True)
        return RouteResult(
            kind=None, confidence=confidence, runners_up=ranked[: self.n_runners_up], in_scope=False
        )
