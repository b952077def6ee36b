"""The training data of a stage: samples from the shards, each prepared for a step, resumable.

SFT and PA-GRPO read the same stream; they differ only in what a step takes from a sample (the
reference output's check, the prompt's token ids and vision features) and in why a sample can be
skipped. A `SkipRule` names that reason; a refused sample is logged, counted
(`videop2r_samples_skipped_total{reason}`) and passed over, never the end of the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from videop2r.config import VideoP2RConfig

log = logging.getLogger(__name__)

Prepared = TypeVar("Prepared")


@dataclass(frozen=True)
class SkipRule:
    """Which error of `prepare` means "skip this sample", its skip-counter reason, how often it is logged."""

    error: type[Exception]
    reason: str
    warn_once: bool = False  # for data where a refused record is common (SFT sets without an output)


class SampleFeed(Generic[Prepared]):
    """Samples from the training shards with `prepare(processor, sample)` applied; `cursor` is the
    stream position after the last sample taken (refused ones included), the checkpoint's resume point."""

    def __init__(self, config: VideoP2RConfig, uri: str, cursor: dict | None, skip_counter: Callable[[str], Any],
                 processor: Any, prepare: Callable[[Any, Any], Prepared], skip: SkipRule) -> None:
        from videop2r.data.stream import ShardStream

        self.stream = ShardStream(uri, config.data, config.storage, epochs=None, cursor=cursor)
        self.cursor = self.stream.start.to_dict()
        self._samples: Iterator[Any] = iter(self.stream)
        self.skip_counter = skip_counter
        self.processor = processor
        self.prepare = prepare
        self.skip = skip
        self.skipped: Counter[str] = Counter()

    def take(self, count: int) -> list[tuple[Any, Prepared]]:
        """The next `count` usable samples, each with what `prepare` made of it."""
        taken = []
        while len(taken) < count:
            sample = next(self._samples)
            self.cursor = sample.cursor.to_dict()
            try:
                prepared = self.prepare(self.processor, sample)
            except self.skip.error as exc:
                if not (self.skip.warn_once and self.skipped[self.skip.reason]):
                    log.warning("skipping record %s (%s): %s", sample.record.problem_id, self.skip.reason, exc)
                self.skipped[self.skip.reason] += 1
                self.skip_counter(self.skip.reason)
                continue
            taken.append((sample, prepared))
        return taken

    def close(self) -> None:
        close = getattr(self._samples, "close", None)
        if close is not None:
            close()
