"""What the user does around `helm install`: make the data and the model, put them in the bucket,
submit the RayJob (`videop2r submit --dry-run` gives the manifest the CLI would send).

The data and the tiny model are made once with the project's own commands and cached; the upload
goes to the chart's MinIO through its pod address, as `kubectl port-forward` + `mc cp` would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from infra.rehearsal.render import NAMESPACE, REPO

CLI = [sys.executable, "-c", "import sys; from videop2r.cli import main; sys.exit(main(sys.argv[1:]))"]


def videop2r(*args: str, timeout_s: float = 600) -> str:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HOME": "/root"}
    done = subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"videop2r {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout


def artifacts(cache: Path, train_clips: int = 24, eval_clips: int = 8) -> dict[str, Path]:
    """Synthetic clips packed into shards and a freshly initialised tiny model (cached)."""
    done = cache / f"done-{train_clips}-{eval_clips}"
    out = {"train": cache / "shards" / "train", "eval": cache / "shards" / "eval", "model": cache / "model"}
    if done.exists():
        return out
    config = str(REPO / "configs" / "demo.yaml")
    videop2r("data", "synth", "--out", str(cache / "data"), "--split", f"train={train_clips}",
             "--split", f"eval={eval_clips}", "--questions", "colour", "--seed", "0", "--config", config)
    for split in ("train", "eval"):
        videop2r("data", "pack", "--records", str(cache / "data" / f"{split}.jsonl"), "--media-root",
                 str(cache / "data"), "--out", str(out[split]), "--config", config)
    videop2r("model", "init", "--preset", "tiny", "--out", str(out["model"]), "--corpus",
             str(cache / "data" / "train.jsonl"), "--config", config, "--overwrite")
    done.write_text("ok\n")
    return out


def upload(endpoint: str, access_key: str, secret_key: str, bucket: str, items: dict[str, Path],
           timeout_s: float = 300) -> dict[str, int]:
    """Wait for `bucket` (the chart creates it), then put each local dir under its key prefix."""
    from minio import Minio

    s3 = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if s3.bucket_exists(bucket):
                break
        except Exception:  # noqa: BLE001 - the store is still starting
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"bucket {bucket!r} not there after {timeout_s:.0f}s (the chart creates it)")
        time.sleep(1)
    counts = {}
    for prefix, local in items.items():
        n = 0
        for path in sorted(local.rglob("*")):
            if path.is_file():
                s3.fput_object(bucket, f"{prefix}/{path.relative_to(local).as_posix()}", str(path))
                n += 1
        counts[prefix] = n
    return counts


def rayjob(steps: int, cluster: dict[str, Any], extra_overrides: list[str] | None = None) -> dict[str, Any]:
    """The PA-GRPO RayJob as `videop2r submit jobs/pa-grpo.yaml` sends it: the --dry-run manifest,
    completed from the target RayCluster (`cluster`, as the API server holds it) the way submit
    does when the project has that step (videop2r.k8s.submitter)."""
    args = ["submit", str(REPO / "jobs" / "pa-grpo.yaml"), "--namespace", NAMESPACE, "--dry-run",
            "--override", f"trainer.total_steps={steps}"]
    for item in extra_overrides or []:
        args += ["--override", item]
    job = yaml.safe_load(videop2r(*args, timeout_s=120))
    try:
        from videop2r.k8s.submitter import fill_submitter, selected_cluster
    except ImportError:
        return job
    if selected_cluster(job) == cluster["metadata"]["name"]:
        fill_submitter(job, cluster)
    return job
