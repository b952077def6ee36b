"""ShardStream on local shards: order per seed, resume from a cursor, parallel decode that does not
change results, counted skips of bad media, rank partitioning, clear errors."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from prometheus_client import REGISTRY

from videop2r.config import DataConfig
from videop2r.data.packing import pack_shards
from videop2r.data.shards import ShardsNotFound
from videop2r.data.stream import ShardStream, StreamCursor, StreamError, epoch_order
from videop2r.data.video import load_video

CONFIG = DataConfig(video_min_pixels=4 * 28 * 28, video_max_pixels=8 * 28 * 28, max_frames=4, shard_size=4,
                    decode_workers=2, prefetch=3)
N_GOOD = 11


def write_clip(path: Path, frames: int, colour: tuple[int, int, int]) -> None:
    """A tiny H.264 mp4: a bar of `colour` moving right on black, 64x48 at 8 fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, (4 * i) % 56:(4 * i) % 56 + 8] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def row(problem_id: str, path: str, data_type: str = "video") -> dict:
    return {"problem_id": problem_id, "problem": "how many?", "path": path, "data_type": data_type,
            "problem_type": "numerical", "solution": "<answer>3</answer>"}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """11 good clips + 1 image, and 2 clips that break at decode time (packed without probing):
    4 shards of 4/4/4/2 records."""
    root = tmp_path_factory.mktemp("stream")
    media = root / "media"
    rows = []
    for i in range(N_GOOD):
        write_clip(media / f"v{i}.mp4", frames=8 + i, colour=(20 * i, 200, 255 - 20 * i))
        rows.append(row(f"clip-{i}", f"v{i}.mp4"))
    from PIL import Image

    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(media / "img.png")
    rows.insert(5, row("image-0", "img.png", "image"))
    good = (media / "v3.mp4").read_bytes()
    (media / "truncated.mp4").write_bytes(good[: len(good) * 2 // 3])
    (media / "garbage.mp4").write_bytes(np.random.default_rng(7).bytes(3000))
    rows.insert(2, row("bad-truncated", "truncated.mp4"))
    rows.insert(9, row("bad-garbage", "garbage.mp4"))
    (root / "records.json").write_text(json.dumps(rows))
    pack_shards(root / "records.json", media, str(root / "shards"), data_config=CONFIG, probe=False)
    return str(root / "shards"), media


def keys(samples) -> list[str]:
    return [s.key for s in samples]


def test_one_epoch_yields_every_good_record_once_with_decoded_media(packed):
    uri, media = packed
    stream = ShardStream(uri, CONFIG)
    samples = list(stream)
    ids = sorted(s.record.problem_id for s in samples)
    assert ids == sorted([f"clip-{i}" for i in range(N_GOOD)] + ["image-0"])
    assert stream.skipped == {"bad_media": 2}
    for sample in samples:
        if sample.record.data_type == "image":
            assert sample.video is None and sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
            continue
        reference = load_video(media / sample.record.path, CONFIG)  # straight from the source file
        assert sample.video.frame_indices == reference.frame_indices
        assert np.array_equal(sample.video.frames, reference.frames)
        assert sample.image is None


def test_order_is_deterministic_per_seed_and_unshuffled_is_pack_order(packed):
    uri, _ = packed
    first = keys(ShardStream(uri, CONFIG, seed=3, decode=False))
    assert first == keys(ShardStream(uri, CONFIG, seed=3, decode=False))
    assert first != keys(ShardStream(uri, CONFIG, seed=4, decode=False))
    pack_order = [f"{i:08d}" for i in range(14)]  # without decoding nothing is skipped
    assert sorted(first) == pack_order
    assert keys(ShardStream(uri, CONFIG, shuffle=False, decode=False)) == pack_order
    two_epochs = keys(ShardStream(uri, CONFIG, seed=3, epochs=2, decode=False))
    assert two_epochs[:14] == first and two_epochs[14:] != first and sorted(two_epochs[14:]) == sorted(first)


def test_worker_count_and_prefetch_do_not_change_the_sequence(packed):
    uri, _ = packed
    runs = []
    for workers, prefetch in ((1, 0), (3, 8)):
        config = CONFIG.model_copy(update={"decode_workers": workers, "prefetch": prefetch})
        runs.append([(s.key, s.video.frames.tobytes() if s.video else s.image.tobytes()) for s in ShardStream(uri, config)])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("k", [0, 1, 4, 7, 11, 12, 13])
def test_resume_from_the_cursor_after_k_samples_yields_exactly_the_rest(packed, k):
    uri, _ = packed
    full = list(ShardStream(uri, CONFIG, epochs=2, seed=11))  # 24 samples: two epochs of 12 good ones
    assert len(full) == 24
    cursor = full[k - 1].cursor if k else StreamCursor(seed=11, dataset_id=full[0].cursor.dataset_id)
    saved = json.loads(json.dumps(cursor.to_dict()))  # as a checkpoint would store it
    rest = list(ShardStream(uri, CONFIG, epochs=2, seed=11, cursor=saved))
    assert keys(rest) == keys(full[k:])
    assert [s.cursor for s in rest] == [s.cursor for s in full[k:]]


def test_stream_cursor_tracks_the_last_sample_and_survives_an_early_stop(packed):
    uri, _ = packed
    baseline = threading.active_count()
    stream = ShardStream(uri, CONFIG, seed=5, epochs=None)
    taken = []
    for sample in stream:
        taken.append(sample)
        if len(taken) == 30:  # past two epoch ends of an endless stream
            break
    assert stream.cursor == taken[-1].cursor and stream.state_dict()["epoch"] == 2
    assert threading.active_count() <= baseline  # decode threads stopped with the loop
    rest = ShardStream(uri, CONFIG, seed=5, epochs=4, cursor=stream.state_dict())
    again = ShardStream(uri, CONFIG, seed=5, epochs=4)
    assert keys(rest) == keys(list(again)[30:])


def test_bad_media_is_a_counted_skip_with_one_log_line_naming_the_record(packed, caplog):
    uri, _ = packed
    before = REGISTRY.get_sample_value("videop2r_samples_skipped_total", {"reason": "bad_media"}) or 0.0
    with caplog.at_level(logging.WARNING, logger="videop2r.data.stream"):
        samples = list(ShardStream(uri, CONFIG, seed=1))
    assert len(samples) == 12
    after = REGISTRY.get_sample_value("videop2r_samples_skipped_total", {"reason": "bad_media"})
    assert after - before == 2
    lines = [m for m in caplog.messages if "skipping record" in m]
    assert len(lines) == 2
    assert any("bad-truncated" in m for m in lines) and any("bad-garbage" in m for m in lines)


def test_ranks_partition_each_epoch(packed):
    uri, _ = packed
    parts = [keys(ShardStream(uri, CONFIG, seed=2, rank=r, world_size=3, decode=False)) for r in range(3)]
    whole = keys(ShardStream(uri, CONFIG, seed=2, decode=False))
    assert sorted(sum(parts, [])) == sorted(whole)
    assert parts[1] == whole[1::3]
    resumed = ShardStream(uri, CONFIG, seed=2, rank=1, world_size=3, decode=False,
                          cursor=list(ShardStream(uri, CONFIG, seed=2, rank=1, world_size=3, decode=False))[1].cursor)
    assert keys(resumed) == parts[1][2:]
    with pytest.raises(StreamError, match="rank 3"):
        ShardStream(uri, CONFIG, rank=3, world_size=3)


def test_cursors_that_do_not_fit_are_refused(packed, tmp_path):
    uri, _ = packed
    cursor = next(iter(ShardStream(uri, CONFIG, seed=1))).cursor
    with pytest.raises(StreamError, match="seed 1"):
        ShardStream(uri, CONFIG, seed=2, cursor=cursor)
    with pytest.raises(StreamError, match="dataset"):
        ShardStream(uri, CONFIG, seed=1, cursor={**cursor.to_dict(), "dataset_id": "0123456789abcdef"})
    with pytest.raises(StreamError, match="not a stream cursor"):
        ShardStream(uri, CONFIG, seed=1, cursor={"epoch": 0})
    with pytest.raises(StreamError, match="outside"):
        ShardStream(uri, CONFIG, seed=1, cursor={**cursor.to_dict(), "position": 99})


def test_missing_or_empty_datasets_are_clear_errors(tmp_path):
    with pytest.raises(ShardsNotFound, match="no such location"):
        ShardStream(str(tmp_path / "nope"), CONFIG)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ShardsNotFound, match="no shards here"):
        ShardStream(str(tmp_path / "dir"), CONFIG)
    (tmp_path / "r.json").write_text(json.dumps([row("x", "missing.mp4")]))
    (tmp_path / "m").mkdir()
    pack_shards(tmp_path / "r.json", tmp_path / "m", str(tmp_path / "all-skipped"), data_config=CONFIG)
    with pytest.raises(StreamError, match="no records"):
        ShardStream(str(tmp_path / "all-skipped"), CONFIG)


def test_epoch_order_is_a_permutation_grouped_by_shard():
    shards, inner = epoch_order([4, 4, 4, 2], seed=0, epoch=0, shuffle=True)
    pairs = set(zip(shards.tolist(), inner.tolist()))
    assert len(pairs) == 14 and pairs == {(s, i) for s, n in enumerate([4, 4, 4, 2]) for i in range(n)}
    runs = [shards[0]] + [b for a, b in zip(shards, shards[1:]) if a != b]
    assert sorted(runs) == [0, 1, 2, 3]  # each shard visited in one run


def test_record_that_no_longer_validates_is_a_counted_skip(packed, tmp_path, caplog):
    """A shard entry whose record the current model rejects (e.g. packed by another version)."""
    import shutil

    uri, _ = packed
    copy = tmp_path / "copy"
    shutil.copytree(uri, copy)
    index_file = next(copy.glob("g*/00000.idx.json"))
    shard_index = json.loads(index_file.read_text())
    victim = shard_index["records"][0]
    del victim["record"]["problem"]
    index_file.write_text(json.dumps(shard_index))
    with caplog.at_level(logging.WARNING, logger="videop2r.data.stream"):
        stream = ShardStream(str(copy), CONFIG, decode=False)
        got = keys(stream)
    assert victim["key"] not in got and len(got) == 13
    assert stream.skipped == {"invalid_record": 1}
    assert sum(victim["id"] in m for m in caplog.messages) == 1


def test_iterating_again_continues_after_the_last_sample(packed):
    uri, _ = packed
    stream = ShardStream(uri, CONFIG, seed=8, decode=False)
    first = []
    for sample in stream:
        first.append(sample.key)
        if len(first) == 5:
            break
    assert first + keys(stream) == keys(ShardStream(uri, CONFIG, seed=8, decode=False))
    assert keys(stream) == []  # the one epoch is used up
