"""The CoT data pipeline (method §3): generate → verify → judge over one shard, resumably.

Each step keeps a ledger in the output folder (``generate.jsonl``, ``verify.jsonl``,
``judge.jsonl``; with several shards each name carries ``.shard-IIIII-of-NNNNN``): one line per
record, fsync'ed as it finishes, so a killed run loses nothing it reported and a restarted run
skips every record a step has finished. Records whose teacher call or judge call failed after
all retries are not finished: the next run tries them again.

`run` streams each record through the three steps as soon as the previous one is done (at most
`cot.concurrency` records in flight, so teacher and judge calls overlap); `generate`, `verify`
and `judge` run one step over the whole shard. `judge` and `run` end by writing the kept
records — VideoP2R-layout JSONL, ready for `videop2r data pack` and `videop2r sft` — as
``cot.jsonl`` and the per-step counts beside them as ``cot.counts.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videop2r.config import ConfigError, VideoP2RConfig
from videop2r.cot.inputs import Shard, read_input_records, split_uri
from videop2r.cot.steps import cot_record, generate, judge, verify
from videop2r.data.records import VideoR1Record, write_records
from videop2r.eval.chat_client import ChatClient
from videop2r.eval.clips import MediaLoader
from videop2r.eval.ledger import Ledger
from videop2r.eval.policy import ChatTransport, Policy
from videop2r.eval.source import BenchmarkSource
from videop2r.metrics import metric

log = logging.getLogger(__name__)
STEPS = ("generate", "verify", "judge")
RETRIED_GENERATION = frozenset({"failed"})


@dataclass
class CoTRequest:
    records: str
    output: Path
    media_root: str | None = None
    shard: Shard = field(default_factory=Shard)
    progress: bool = True


class CoTPipeline:
    """The pipeline over one shard of the input records. Use as ``async with``."""

    def __init__(
        self,
        request: CoTRequest,
        config: VideoP2RConfig,
        *,
        teacher: Policy | None = None,
        registry: Any = None,
    ) -> None:
        self.request = request
        self.config = config
        self.out_dir = Path(request.output)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        records, skipped = read_input_records(request.records, config.storage)
        self.invalid_records = len(skipped)
        self.records: list[VideoR1Record] = [r for r in records if request.shard.holds(r.problem_id)]
        self.by_id = {str(record.problem_id): record for record in self.records}
        if len(self.by_id) != len(self.records):
            raise ConfigError(f"config error: --records: {request.records} holds duplicate problem_ids")
        sfx = request.shard.suffix
        self.ledgers = {step: Ledger(self.out_dir / f"{step}{sfx}.jsonl") for step in STEPS}
        self.output_path = self.out_dir / f"cot{sfx}.jsonl"
        self.counts_path = self.out_dir / f"cot{sfx}.counts.json"
        self._records_total = metric("videop2r_cot_records_total", registry)
        # -- the teacher (default: cot.teacher_url through ChatTransport); tests and other callers may pass any Policy
        self._teacher: Policy | None = teacher
        self._loader: MediaLoader | None = None
        self._judge = None

    # -- lifecycle

    async def __aenter__(self) -> "CoTPipeline":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._teacher is not None:
            await self._teacher.aclose()
        if self._judge is not None:
            await self._judge.aclose()
        for ledger in self.ledgers.values():
            ledger.close()

    def teacher(self) -> Policy:
        if self._teacher is None:
            cot = self.config.cot
            if not cot.teacher_url:
                raise ConfigError(
                    "config error: cot.teacher_url: the teacher endpoint is not set (--teacher URL)"
                )
            chat = ChatClient(
                cot.teacher_url,
                cot.teacher_model,
                api_key=os.environ.get(cot.teacher_api_key_env) or None,
                timeout_s=cot.timeout_s,
                max_retries=cot.max_retries,
                retry_backoff_s=cot.retry_backoff_s,
            )
            self._teacher = ChatTransport(
                chat, media_mode=cot.media, temperature=cot.temperature, max_tokens=cot.max_tokens
            )
        return self._teacher

    def loader(self) -> MediaLoader:
        if self._loader is None:
            root = self.request.media_root or split_uri(self.request.records)[0]
            self._loader = MediaLoader(
                BenchmarkSource.open(root, self.config.storage),
                self.config.data,
                keep_source=self.config.cot.media == "video_url",
            )
        return self._loader

    def judge_client(self):  # noqa: ANN201 - RewardClient (imported lazily)
        if self._judge is None:
            from videop2r.rewards.client import RewardClient

            self._judge = RewardClient.from_config(self.config)
        return self._judge

    # -- what is left to do

    def needs_generation(self, ident: str) -> bool:
        line = self.ledgers["generate"].get(ident)
        return line is None or line.get("status") in RETRIED_GENERATION

    def generated_output(self, ident: str) -> str | None:
        line = self.ledgers["generate"].get(ident)
        return line.get("output") if line and line.get("status") == "ok" else None

    def needs_verification(self, ident: str) -> bool:
        return self.generated_output(ident) is not None and ident not in self.ledgers["verify"]

    def verified(self, ident: str) -> bool:
        line = self.ledgers["verify"].get(ident)
        return bool(line and line.get("kept")) and self.generated_output(ident) is not None

    def needs_judgement(self, ident: str) -> bool:
        line = self.ledgers["judge"].get(ident)
        return self.verified(ident) and (line is None or bool(line.get("error")))

    # -- one record through the steps

    def _record_line(self, step: str, line: dict[str, Any], outcome: str) -> None:
        self.ledgers[step].append(line)
        self._records_total.labels(step=step, outcome=outcome).inc()

    async def _generate(self, ident: str) -> None:
        line = await generate(self.by_id[ident], self.teacher(), self.loader())
        self._record_line("generate", line, line["status"])

    def _verify(self, ident: str) -> None:
        result = verify(self.by_id[ident], self.generated_output(ident) or "", self.config.cot.min_accuracy)
        self._record_line("verify", result.line(ident), result.reason)

    async def _judge_one(self, ident: str) -> None:
        line = await judge(self.by_id[ident], self.generated_output(ident) or "", self.judge_client())
        outcome = (
            "error"
            if line["error"]
            else "refused"
            if line["refused"]
            else "yes"
            if line["sufficient"]
            else "no"
        )
        self._record_line("judge", line, outcome)

    async def _through(self, ident: str) -> None:
        if self.needs_generation(ident):
            await self._generate(ident)
        if self.needs_verification(ident):
            self._verify(ident)
        if self.needs_judgement(ident):
            await self._judge_one(ident)

    # -- commands

    async def run(self, steps: tuple[str, ...] = STEPS) -> dict[str, int]:
        """Run `steps` ("generate", "verify", "judge", or all three streamed) over the shard."""
        if steps == STEPS:
            todo = [
                i
                for i in self.by_id
                if self.needs_generation(i) or self.needs_verification(i) or self.needs_judgement(i)
            ]
            await self._each(todo, self._through, "cot")
        else:
            for step in steps:
                if step == "generate":
                    await self._each(
                        [i for i in self.by_id if self.needs_generation(i)], self._generate, "generate"
                    )
                elif step == "verify":
                    for ident in [i for i in self.by_id if self.needs_verification(i)]:
                        self._verify(ident)
                else:
                    await self._each(
                        [i for i in self.by_id if self.needs_judgement(i)], self._judge_one, "judge"
                    )
        counts = self.counts()
        if "judge" in steps:
            self.write_output()
        self.counts_path.write_text(json.dumps(counts, indent=1) + "\n")
        return counts

    async def _each(self, idents: list[str], work: Any, desc: str) -> None:
        from tqdm import tqdm

        skipped = len(self.by_id) - len(idents)
        if skipped:
            log.info(
                "%s: %d of %d records of this shard need no work (finished earlier)",
                desc,
                skipped,
                len(self.by_id),
            )
        gate = asyncio.Semaphore(self.config.cot.concurrency)
        bar = tqdm(total=len(idents), desc=desc, unit="record", disable=not self.request.progress)

        async def one(ident: str) -> None:
            async with gate:
                await work(ident)
                bar.update(1)

        try:
            await asyncio.gather(*(one(ident) for ident in idents))
        finally:
            bar.close()

    def counts(self) -> dict[str, int]:
        """Per-step counts of the shard (the numbers `cot.counts.json` holds)."""
        gen = Counter(
            str((self.ledgers["generate"].get(i) or {}).get("status", "pending")) for i in self.by_id
        )
        verified = [self.ledgers["verify"].get(i) for i in self.by_id if self.generated_output(i) is not None]
        reasons = Counter(line["reason"] for line in verified if line)
        judged = [self.ledgers["judge"].get(i) for i in self.by_id if self.verified(i)]
        kept = sum(1 for line in judged if line and line.get("sufficient") and not line.get("error"))
        return {
            "records": len(self.by_id),
            "invalid_records": self.invalid_records,
            "generated": gen["ok"],
            "generation_failed": gen["failed"],
            "generation_rejected": gen["rejected"],
            "bad_media": gen["bad_media"],
            "template_failures": reasons["template"],
            "low_accuracy": reasons["low_accuracy"],
            "verified": reasons["ok"],
            "judged": sum(1 for line in judged if line and not line.get("error")),
            "insufficient": sum(
                1 for line in judged if line and not line.get("sufficient") and not line.get("error")
            ),
            "refused": sum(1 for line in judged if line and line.get("refused")),
            "judge_failed": sum(1 for line in judged if line and line.get("error")),
            "kept": kept,
            "pending": sum(
                1
                for i in self.by_id
                if self.needs_generation(i) or self.needs_verification(i) or self.needs_judgement(i)
            ),
        }

    def write_output(self) -> Path:
        """The kept records, in input order, as VideoP2R-layout JSONL (rewritten atomically)."""
        teacher = self.config.cot.teacher_model
        rows = []
        for ident, record in self.by_id.items():
            line = self.ledgers["judge"].get(ident)
            output = self.generated_output(ident)
            if self.verified(ident) and line and line.get("sufficient") and not line.get("error") and output:
                rows.append(cot_record(record, output, teacher))
        return write_records(self.output_path, rows)


async def run_pipeline(
    request: CoTRequest, config: VideoP2RConfig, steps: tuple[str, ...] = STEPS
) -> dict[str, int]:
    """Run `steps` of the pipeline over `request.shard`; returns (and writes) the counts."""
    async with CoTPipeline(request, config) as pipeline:
        return await pipeline.run(steps)
