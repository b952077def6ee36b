"""Run the study's jobs: the task data, then per seed model init → SFT → every RL arm.

Each job is a `videop2r` command (the same CLI a user runs) with its own run directory and log;
up to `parallel` jobs run at a time, a job starting once the jobs it needs have finished. A seed's
arms all start from that seed's SFT checkpoint, with the same data order (`data.seed`), rollout
seeds (`trainer.seed`) and RL budget. A failed job fails the study with the path of its log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from videop2r.data.hard_task import SPLITS, synthesize_hard
from videop2r.replication.spec import ARMS, StudySpec

log = logging.getLogger(__name__)


class StudyError(RuntimeError):
    """A job of the study failed."""


@dataclass
class Job:
    name: str
    argv: list[str]
    log_path: Path
    needs: list[str] = field(default_factory=list)
    done_marker: Path | None = None  # exists once the job has finished: a rerun skips it
    priority: int = 1  # among ready jobs, lower starts first (SFT before arms: it unblocks a whole seed)
    fresh_dir: Path | None = None  # emptied before the job starts: dumps of an interrupted try are appended to
    process: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class Layout:
    """Where everything of a study lives under its output directory."""

    out: Path

    @property
    def data(self) -> Path:
        return self.out / "data"

    def shards(self, split: str) -> Path:
        return self.out / "shards" / split

    def seed_dir(self, seed: int) -> Path:
        return self.out / f"seed-{seed}"

    def init_model(self, seed: int) -> Path:
        return self.seed_dir(seed) / "model-init"

    def sft_model(self, seed: int) -> Path:
        return self.seed_dir(seed) / "model-sft"

    def run_dir(self, seed: int, arm: str) -> Path:
        return self.seed_dir(seed) / arm

    @property
    def base_config(self) -> Path:
        return self.out / "base-config.yaml"


def _cli() -> list[str]:
    return [sys.executable, "-m", "videop2r"]


def prepare_data(spec: StudySpec, layout: Layout) -> dict:
    """Synthesize and pack the four splits once (kept when already there)."""
    marker = layout.out / "data.json"
    if marker.exists():
        return json.loads(marker.read_text())
    summary = synthesize_hard(layout.data, spec.task, seed=spec.data_seed)
    for split in SPLITS:
        _run([*_cli(), "data", "pack", "--records", str(layout.data / f"{split}.jsonl"), "--media-root",
              str(layout.data), "--out", str(layout.shards(split)), "--config", str(layout.base_config)],
             layout.out / "logs" / f"pack-{split}.log")
    info = summary.as_dict()
    marker.write_text(json.dumps(info, indent=1))
    return info


def _run(argv: list[str], log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, env=job_env())
    if code:
        raise StudyError(f"{' '.join(argv[2:5])} failed (exit {code}); see {log_path}")


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "RAY_USAGE_STATS_ENABLED": "0",
                # Ray starts workers at nice 15; here the learner worker IS the work being timed
                "RAY_worker_niceness": "0",
                # on a busy machine spinning OpenMP threads burn the time slices the work needs
                "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE")})
    return env


def common_overrides(layout: Layout, seed: int, run_dir: Path, name: str) -> list[str]:
    return [f"trainer.seed={seed}", f"data.seed={seed}", f"trainer.output_dir={run_dir}",
            f"storage.uri={run_dir}/store", f"trainer.run_name={name}", f"reward.tokenizer={layout.init_model(seed)}",
            "trainer.dump_rollouts=true", "metrics.progress=false", f"data.train_uri={layout.shards('rl')}"]


def plan_jobs(spec: StudySpec, layout: Layout) -> list[Job]:
    """Every job of the study in start order, with what each needs."""
    jobs: list[Job] = []
    config = ["--config", str(layout.base_config)]
    first_rl = spec.rl_arms[0]
    for seed in spec.seeds:
        sd = layout.seed_dir(seed)
        init = Job(f"init-{seed}", [*_cli(), "model", "init", "--out", str(layout.init_model(seed)), "--corpus",
                                    str(layout.data / "sft.jsonl"), "--seed", str(seed), *config],
                   sd / "logs" / "init.log", done_marker=layout.init_model(seed) / "config.json", priority=0)
        sft_dir = layout.run_dir(seed, "sft")
        sft = Job(f"sft-{seed}", [*_cli(), "sft", *config, *common_overrides(layout, seed, sft_dir, f"rep-{seed}-sft"),
                                  f"model.path={layout.init_model(seed)}", f"trainer.sft.data_uri={layout.shards('sft')}",
                                  f"data.eval_uri={layout.shards('val')}", f"trainer.sft.output_path={layout.sft_model(seed)}",
                                  *spec.sft_overrides],
                  sd / "logs" / "sft.log", needs=[init.name], done_marker=sft_dir / "sft.done", priority=0,
                  fresh_dir=sft_dir)
        jobs += [init, sft]
        for arm in spec.rl_arms:
            run_dir = layout.run_dir(seed, arm)
            jobs.append(Job(f"{arm}-{seed}", [
                *_cli(), "train", *config, *common_overrides(layout, seed, run_dir, f"rep-{seed}-{arm}"),
                f"model.path={layout.sft_model(seed)}", f"data.eval_uri={layout.shards('test')}",
                # the SFT model's test evaluation (the `sft` arm, step 0 of every curve) is made once per seed
                f"trainer.eval_before={'true' if arm == first_rl else 'false'}",
                f"trainer.output_path={run_dir}/model", *spec.rl_overrides, *(ARMS[arm] or [])],
                sd / "logs" / f"{arm}.log", needs=[sft.name], done_marker=run_dir / "arm.done", fresh_dir=run_dir))
    return jobs


def run_jobs(jobs: list[Job], parallel: int, poll_s: float = 2.0) -> dict[str, float]:
    """Run the jobs, `parallel` at a time in list order as their needs finish; seconds per job."""
    pending, running, done = [], [], {}
    for job in jobs:  # finished in an earlier (interrupted) run of the same study
        if job.done_marker is not None and job.done_marker.exists():
            done[job.name] = 0.0
            log.info("skip %s: already done (%s)", job.name, job.done_marker)
        else:
            pending.append(job)
    try:
        while pending or running:
            for job in list(running):
                code = job.process.poll()
                if code is None:
                    continue
                running.remove(job)
                job.seconds = time.time() - job.started
                if code:
                    raise StudyError(f"job {job.name} failed (exit {code}); see {job.log_path}")
                done[job.name] = job.seconds
                if job.done_marker is not None and not job.done_marker.exists():
                    job.done_marker.write_text(f"{job.seconds:.1f}\n")
                log.info("done %s in %.0fs", job.name, job.seconds)
            for job in sorted(pending, key=lambda j: j.priority):  # stable: list order within a priority
                if len(running) >= parallel:
                    break
                if all(n in done for n in job.needs):
                    pending.remove(job)
                    job.log_path.parent.mkdir(parents=True, exist_ok=True)
                    if job.fresh_dir is not None and job.fresh_dir.exists():
                        shutil.rmtree(job.fresh_dir)
                    log.info("start %s", job.name)
                    job.started = time.time()
                    job.process = subprocess.Popen(job.argv, stdout=job.log_path.open("w"), stderr=subprocess.STDOUT,
                                                   env=job_env(), start_new_session=True)
                    running.append(job)
            time.sleep(poll_s)
    finally:
        for job in running:  # a failure (or Ctrl-C) stops the others: their process groups
            if job.process and job.process.poll() is None:
                os.killpg(job.process.pid, 15)
                job.process.wait(timeout=60)
    return done


def write_base_config(spec: StudySpec, layout: Layout) -> None:
    layout.out.mkdir(parents=True, exist_ok=True)
    layout.base_config.write_text(yaml.safe_dump(spec.train, sort_keys=False))


def run_study(spec: StudySpec, out: str | Path) -> dict:
    """Everything up to the dumps; returns {job name: seconds} plus the data summary."""
    layout = Layout(Path(out))
    started = time.time()
    write_base_config(spec, layout)
    data = prepare_data(spec, layout)
    data_seconds = time.time() - started
    seconds = run_jobs(plan_jobs(spec, layout), spec.parallel)
    return {"data": data, "data_seconds": data_seconds, "job_seconds": seconds, "wall_s": time.time() - started}
