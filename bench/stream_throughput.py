"""Sample throughput of the shard reader (`ShardStream`): parallel + prefetch against serial,
from a local directory and from S3 (a real juicefs gateway started here on 127.0.0.1).

The clips come from `videop2r data synth` at a larger frame size (so decoding costs what it
costs) and are packed with `pack_shards`. For each store the script reads one epoch

  serial:    decode_workers=1, prefetch=0 (fetch, decode, yield, one after the other) -- the peer
  parallel:  decode_workers=N, prefetch=8 (ranged reads and decodes in N threads, in order)

and prints samples/s, sampled frames/s and parallel/serial. Both must yield the same keys in
the same order with identical frames (checked).

    .venv/bin/python bench/stream_throughput.py [--clips 12] [--size 336] [--workers N] [--no-s3]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from videop2r.config import DataConfig, StorageConfig
from videop2r.data.packing import pack_shards
from videop2r.data.stream import ShardStream
from videop2r.data.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]


def read_epoch(uri: str, config: DataConfig, storage: StorageConfig | None) -> tuple[float, list, int]:
    """(seconds, [(key, frames digest)], sampled frames) for one epoch."""
    started = time.perf_counter()
    seen, frames = [], 0
    for sample in ShardStream(uri, config, storage, seed=0):
        seen.append((sample.key, hash(sample.video.frames.tobytes())))
        frames += sample.video.frames.shape[0]
    return time.perf_counter() - started, seen, frames


def measure(label: str, uri: str, base: DataConfig, storage: StorageConfig | None, workers: int, rounds: int) -> None:
    serial_cfg = base.model_copy(update={"decode_workers": 1, "prefetch": 0})
    parallel_cfg = base.model_copy(update={"decode_workers": workers, "prefetch": 8})
    best = {}
    for name, config in (("serial", serial_cfg), ("parallel", parallel_cfg)):
        runs = [read_epoch(uri, config, storage) for _ in range(rounds)]
        seconds = min(r[0] for r in runs)
        best[name] = (seconds, runs[0][1], runs[0][2])
    assert best["serial"][1] == best["parallel"][1], "parallel reader changed the order or the frames"
    n = len(best["serial"][1])
    for name in ("serial", "parallel"):
        seconds, _, frames = best[name]
        print(f"{label:6s} {name:8s}  {n / seconds:8.1f} samples/s  {frames / seconds:9.1f} frames/s  ({seconds:.2f} s)")
    print(f"{label:6s} parallel/serial: {best['serial'][0] / best['parallel'][0]:.2f}x  (identical sequence: yes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--size", type=int, default=336, help="frame side of the synthetic clips")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = DataConfig(nframes=16, video_min_pixels=128 * 28 * 28, video_max_pixels=128 * 28 * 28, shard_size=8)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        tmp = Path(tmp)
        summary = synthesize(tmp / "synth", args.clips, seed=0, size=args.size, fps=24, durations=(4, 6),
                             questions=["colour"], progress=False)
        records = summary.splits["train"].records_jsonl
        print(f"{args.clips} clips {args.size}x{args.size} @24 fps, 4-6 s; 16 frames x 128*28*28 px per sample; "
              f"{args.workers} decode workers")
        pack_shards(records, tmp / "synth", str(tmp / "shards"), data_config=config)
        measure("local", str(tmp / "shards"), config, None, args.workers, args.rounds)
        if args.no_s3:
            return
        spec = importlib.util.spec_from_file_location("s3_gateway", ROOT / "infra" / "s3_gateway.py")
        gateway_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gateway_module)
        if gateway_module.find_juicefs() is None:
            print("s3: skipped (juicefs not installed)")
            return
        with gateway_module.S3Gateway(tmp / "gw") as gateway:
            storage = StorageConfig(endpoint=gateway.endpoint, access_key=gateway.access_key,
                                    secret_key=gateway.secret_key)
            pack_shards(records, tmp / "synth", "s3://bench/shards", data_config=config, storage_config=storage)
            measure("s3", "s3://bench/shards", config, storage, args.workers, args.rounds)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
