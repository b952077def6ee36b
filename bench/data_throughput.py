"""Decode + sample throughput: our PyAV pipeline against qwen_vl_utils.fetch_video (decord).

Both sides produce Qwen2.5-VL inputs for the same clips at 16 frames × 128·28·28 pixels
(nframes=16, min_pixels = max_pixels = 128·28·28). The peer is the reference preprocessing as
training code calls it: `fetch_video` one clip after another, decord backend. Ours is
`videop2r.data.video.load_videos` (a thread pool sized to the CPUs, each clip decoding only the
frames its samples need). The script checks that both pick identical frame indices and output
sizes for every clip, and prints clips/s, frames/s (sampled frames delivered) and the ratio.

The clips are made at the start with PyAV/libx264 (moving noise texture + a moving box, so
the bitrate is that of real footage: ~2 Mbit/s at 720p): 480p and 720p, 10-30 s, x264's
default 250-frame GOP and a 2-second GOP. Pass --clips-dir to keep them between runs.

    .venv/bin/python bench/data_throughput.py [--rounds 2] [--clips-dir DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ["FORCE_QWENVL_VIDEO_READER"] = "decord"  # read at import time by qwen_vl_utils

import av  # noqa: E402
import numpy as np  # noqa: E402

from videop2r.config import DataConfig  # noqa: E402
from videop2r.data.media import MediaError  # noqa: E402
from videop2r.data.video import default_workers, load_videos  # noqa: E402

PIXELS = 128 * 28 * 28
NFRAMES = 16
# (name, width, height, fps, seconds, x264 keyint or None for the default 250)
CLIPS = (
    ("720p30_20s", 1280, 720, 30, 20, None),
    ("720p25_12s_gop2s", 1280, 720, 25, 12, 50),
    ("480p30_30s", 854, 480, 30, 30, None),
    ("480p24_16s_gop2s", 854, 480, 24, 16, 48),
)


def make_clip(path: Path, width: int, height: int, fps: int, seconds: int, keyint: int | None) -> None:
    """A clip with real-footage bitrate: a panned blocky noise texture plus a moving box."""
    rng = np.random.default_rng(width * 1000 + fps)
    frames = fps * seconds
    noise = rng.integers(0, 256, (height // 8 + 2, width // 4 + 2, 3), dtype=np.uint8)
    texture = np.kron(noise, np.ones((8, 8, 1), dtype=np.uint8))[: height + 16, : 2 * width]
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        options = {"preset": "veryfast", "crf": "23"}
        if keyint:
            options["x264-params"] = f"keyint={keyint}:min-keyint={keyint}"
        stream.options = options
        for i in range(frames):
            x = int(i * width / frames)
            image = texture[8 : 8 + height, x : x + width].copy()
            y0 = int((height - 60) * (0.5 + 0.5 * np.sin(i / 15)))
            x0 = (3 * i) % (width - 60)
            image[y0 : y0 + 60, x0 : x0 + 60] = (255, 0, 0)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def ensure_clips(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, width, height, fps, seconds, keyint in CLIPS:
        path = directory / f"{name}.mp4"
        if not path.exists():
            started = time.perf_counter()
            make_clip(path, width, height, fps, seconds, keyint)
            print(f"  made {path.name}: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s",
                  flush=True)
        paths.append(path)
    return paths


def run_reference(paths: list[Path], rounds: int) -> tuple[float, dict[Path, tuple[list[int], tuple]], dict]:
    from qwen_vl_utils.vision_process import fetch_video

    ele = {"nframes": NFRAMES, "min_pixels": PIXELS, "max_pixels": PIXELS}
    seen: dict[Path, tuple[list[int], tuple]] = {}
    frames: dict[Path, np.ndarray] = {}
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for path in paths:
            video, meta = fetch_video({"video": str(path), **ele}, return_video_metadata=True)
            seen[path] = ([int(i) for i in meta["frames_indices"]], tuple(video.shape[-2:]))
            frames[path] = video
    return (time.perf_counter() - started, time.process_time() - cpu), seen, frames


def run_ours(paths: list[Path], rounds: int, workers: int, config: DataConfig):
    seen: dict[Path, tuple[list[int], tuple]] = {}
    frames: dict[Path, np.ndarray] = {}
    sources = [p for _ in range(rounds) for p in paths]
    started, cpu = time.perf_counter(), time.process_time()
    for path, clip in zip(sources, load_videos([str(p) for p in sources], config, workers=workers)):
        if isinstance(clip, MediaError):
            raise SystemExit(f"our pipeline failed on {path}: {clip}")
        seen[path] = (clip.frame_indices, clip.frames.shape[1:3])
        frames[path] = clip.frames
    return (time.perf_counter() - started, time.process_time() - cpu), seen, frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the clips per pipeline (alternating)")
    parser.add_argument("--clips-dir", type=Path, help="where to keep the generated clips (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=0, help="decode threads for ours (0 = the CPUs)")
    args = parser.parse_args()

    workers = args.workers or default_workers()
    config = DataConfig(nframes=NFRAMES, video_min_pixels=PIXELS, video_max_pixels=PIXELS)
    with tempfile.TemporaryDirectory(prefix="videop2r-bench-") as tmp:
        directory = args.clips_dir or Path(tmp)
        print(f"clips in {directory} (generating any that are missing)", flush=True)
        paths = ensure_clips(directory)
        for path in paths:
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                print(f"  {path.name}: {s.codec_context.width}x{s.codec_context.height} {float(s.average_rate):g} fps, "
                      f"{s.frames} frames, {path.stat().st_size * 8 / (s.frames / float(s.average_rate)) / 1e6:.1f} Mbit/s")
        # Warm-up (imports, page cache, decoder init) outside the timed runs.
        run_reference(paths[:1], 1)
        run_ours(paths[:1], 1, 1, config)

        clips = len(paths) * args.rounds
        load_before = os.getloadavg()[0]
        # Rounds alternate the pipelines, so that a change in the machine's load hits all three alike.
        ref_s = ref_cpu = one_s = one_cpu = our_s = our_cpu = 0.0
        for _ in range(args.rounds):
            (wall, cpu), ref_seen, ref_frames = run_reference(paths, 1)
            ref_s, ref_cpu = ref_s + wall, ref_cpu + cpu
            (wall, cpu), our_seen, our_frames = run_ours(paths, 1, workers, config)
            our_s, our_cpu = our_s + wall, our_cpu + cpu
            (wall, cpu), one_seen, _ = run_ours(paths, 1, 1, config)
            one_s, one_cpu = one_s + wall, one_cpu + cpu
        load_after = os.getloadavg()[0]

    identical = all(ref_seen[p][0] == our_seen[p][0] == one_seen[p][0] for p in paths)
    same_size = all(tuple(ref_seen[p][1]) == tuple(our_seen[p][1]) for p in paths)
    diffs = [float(np.abs(our_frames[p].astype(np.float32) - ref_frames[p].permute(0, 2, 3, 1).numpy()).mean())
             for p in paths]

    def row(name: str, seconds: float, cpu: float) -> str:
        return (f"{name:<44} {clips / seconds:7.2f} clips/s {clips * NFRAMES / seconds:8.1f} frames/s "
                f"{seconds:7.2f} s wall {cpu / clips:6.3f} CPU-s/clip")

    print(f"\n{clips} clips ({len(paths)} × {args.rounds} rounds), {NFRAMES} frames × {PIXELS} pixels, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} -> {load_after:.1f}")
    print(row("qwen_vl_utils.fetch_video (decord), serial", ref_s, ref_cpu))
    print(row("videop2r load_videos, 1 worker", one_s, one_cpu))
    print(row(f"videop2r load_videos, {workers} workers", our_s, our_cpu))
    print(f"ratio (ours, {workers} workers / fetch_video): {ref_s / our_s:.2f}x wall   "
          f"(1 worker: {ref_s / one_s:.2f}x; CPU per clip: {ref_cpu / our_cpu:.2f}x less)   "
          f"goal >= 4x: {'met' if ref_s / our_s >= 4 else 'NOT met'}")
    if load_before > (os.cpu_count() or 1):
        print("note: the machine was busy with other work (load average above the CPU count); wall-clock "
              "ratios understate the parallel speed-up, the CPU-per-clip ratio does not depend on it")
    print(f"frame indices identical for all {len(paths)} clips: {'yes' if identical else 'NO'}; "
          f"output sizes identical: {'yes' if same_size else 'NO'}; "
          f"mean |pixel difference| (resize filters differ): {np.mean(diffs):.2f} / 255")
    if not (identical and same_size):
        for p in paths:
            print(f"  {p.name}: reference {ref_seen[p]} ours {our_seen[p]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
