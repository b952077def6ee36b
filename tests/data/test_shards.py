"""`pack_shards` / `videop2r data pack` and `data inspect` on a local directory: layout, byte
ranges, skips of bad media and records, determinism, generations, publication under a reader."""

from __future__ import annotations

import json
import logging
import tarfile
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from prometheus_client import REGISTRY

from videop2r.cli import main as cli_main
from videop2r.config import DataConfig
from videop2r.data.inspect import inspect_shards
from videop2r.data.packing import pack_shards
from videop2r.data.shards import INDEX_KEY, ShardFormatError, ShardsNotFound, open_shards

SMALL = DataConfig(video_min_pixels=4 * 28 * 28, video_max_pixels=8 * 28 * 28, max_frames=4, shard_size=3)


def write_clip(path: Path, frames: int = 12, colour: tuple[int, int, int] = (255, 0, 0)) -> Path:
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
    return path


def record(problem_id, path: str, problem_type: str = "multiple choice", data_type: str = "video") -> dict:
    answers = {"multiple choice": "A", "numerical": "3", "OCR": "HELLO", "free-form": "a bar", "regression": "2.5"}
    row = {"problem_id": problem_id, "problem": f"question {problem_id}?", "path": path, "data_type": data_type,
           "problem_type": problem_type, "solution": f"<answer>{answers[problem_type]}</answer>",
           "data_source": "test"}
    if problem_type == "multiple choice":
        row["options"] = ["A. red", "B. blue"]
    return row


@pytest.fixture
def dataset(tmp_path):
    """7 good video records over 6 clips (two questions share a clip), all five problem types."""
    media = tmp_path / "media"
    types = ["multiple choice", "numerical", "OCR", "free-form", "regression", "numerical"]
    rows = []
    for i, problem_type in enumerate(types):
        write_clip(media / "clips" / f"c{i}.mp4", frames=10 + i, colour=(40 * i, 255 - 40 * i, 128))
        rows.append(record(i, f"clips/c{i}.mp4", problem_type))
    rows.append(record("shared-6", "clips/c0.mp4", "free-form"))
    path = tmp_path / "records.json"
    path.write_text(json.dumps(rows))
    return path, media, rows


def skipped_metric(reason: str) -> float:
    return REGISTRY.get_sample_value("videop2r_samples_skipped_total", {"reason": reason}) or 0.0


def test_pack_writes_shards_index_and_exact_byte_ranges(dataset, tmp_path):
    records_path, media, rows = dataset
    report = pack_shards(records_path, media, str(tmp_path / "out"), data_config=SMALL)
    assert (report.num_records, report.num_shards, report.skipped) == (7, 3, [])
    shards = open_shards(str(tmp_path / "out"))
    index = shards.index
    assert index.num_records == 7
    assert index.counts == {"data_type": {"video": 7},
                            "problem_type": {"OCR": 1, "free-form": 2, "multiple choice": 1, "numerical": 2,
                                             "regression": 1}}
    assert [s.num_records for s in index.shards] == [3, 3, 1]
    entries = [entry for _, entry in shards.entries()]
    assert [e.key for e in entries] == [f"{i:08d}" for i in range(7)]
    assert [e.id for e in entries] == [str(r["problem_id"]) for r in rows]
    for shard_number, entry in shards.entries():
        source = media / entry.record["path"]
        assert shards.read_media(shard_number, entry) == source.read_bytes()
        tar_path = tmp_path / "out" / index.shards[shard_number].key
        with tarfile.open(tar_path) as tar:
            member = tar.getmember(entry.media.name)
            assert (member.offset_data, member.size) == (entry.media.offset, entry.media.size)
            stored = json.load(tar.extractfile(f"{entry.key}.json"))
        assert stored == entry.record
        assert entry.parse_record().ground_truth is not None


def test_media_shared_by_two_records_is_stored_once_per_shard(tmp_path):
    media = tmp_path / "media"
    write_clip(media / "one.mp4")
    rows = [record(1, "one.mp4"), record(2, "./one.mp4", "numerical")]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    pack_shards(tmp_path / "r.json", media, str(tmp_path / "out"), data_config=SMALL)
    shards = open_shards(str(tmp_path / "out"))
    (_, first), (_, second) = list(shards.entries())
    assert first.media == second.media
    with tarfile.open(tmp_path / "out" / shards.index.shards[0].key) as tar:
        assert [m.name for m in tar.getmembers()].count("media/one.mp4") == 1


def test_bad_media_and_bad_records_are_counted_skips(dataset, tmp_path, caplog):
    records_path, media, rows = dataset
    good = (media / "clips" / "c1.mp4").read_bytes()
    (media / "empty.mp4").write_bytes(b"")
    (media / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (media / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    bad = [record("missing-1", "nowhere.mp4"), record("empty-1", "empty.mp4"),
           record("trunc-1", "truncated.mp4"), record("garbage-1", "garbage.mp4"),
           record("escape-1", "../records.json"),
           {"problem_id": "invalid-1", "problem": "no media path", "data_type": "video",
            "problem_type": "numerical", "solution": "<answer>1</answer>"}]
    records_path.write_text(json.dumps(rows + bad))
    before = {r: skipped_metric(r) for r in ("missing_media", "empty_media", "unreadable_media", "bad_media_path")}
    with caplog.at_level(logging.WARNING):
        report = pack_shards(records_path, media, str(tmp_path / "out"), data_config=SMALL)
    assert report.num_records == 7
    reasons = {s.id: s.reason for s in report.skipped}
    assert reasons == {"missing-1": "missing_media", "empty-1": "empty_media", "trunc-1": "unreadable_media",
                       "garbage-1": "unreadable_media", "escape-1": "bad_media_path", "invalid-1": "invalid_record"}
    for reason, count in {"missing_media": 1, "empty_media": 1, "unreadable_media": 2, "bad_media_path": 1}.items():
        assert skipped_metric(reason) - before[reason] == count
    for ident in reasons:  # one log line each, naming the record
        assert sum(ident in message for message in caplog.messages) == 1, ident
    index = open_shards(str(tmp_path / "out")).index
    assert index.skipped_by_reason == {"bad_media_path": 1, "empty_media": 1, "invalid_record": 1,
                                       "missing_media": 1, "unreadable_media": 2}
    assert "skipped 6" in report.summary()


def test_symlinked_media_inside_the_root_are_packed(tmp_path):
    elsewhere = write_clip(tmp_path / "store" / "real.mp4")
    media = tmp_path / "media"
    media.mkdir()
    (media / "linked.mp4").symlink_to(elsewhere)
    (tmp_path / "r.json").write_text(json.dumps([record(1, "linked.mp4")]))
    report = pack_shards(tmp_path / "r.json", media, str(tmp_path / "out"), data_config=SMALL)
    assert report.num_records == 1 and report.skipped == []


def test_same_input_packs_to_the_same_dataset_id(dataset, tmp_path):
    records_path, media, _ = dataset
    one = pack_shards(records_path, media, str(tmp_path / "a"), data_config=SMALL)
    two = pack_shards(records_path, media, str(tmp_path / "b"), data_config=SMALL)
    assert one.dataset_id == two.dataset_id and one.generation != two.generation
    rows = json.loads(records_path.read_text())
    rows[0]["problem"] = "a different question?"
    records_path.write_text(json.dumps(rows))
    assert pack_shards(records_path, media, str(tmp_path / "c"), data_config=SMALL).dataset_id != one.dataset_id


def test_repacking_keeps_the_previous_generation_and_drops_older_ones(dataset, tmp_path):
    records_path, media, _ = dataset
    out = tmp_path / "out"
    generations = [pack_shards(records_path, media, str(out), data_config=SMALL).generation for _ in range(3)]
    on_disk = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert on_disk == sorted(generations[1:])
    assert json.loads((out / INDEX_KEY).read_text())["generation"] == generations[2]


def test_shard_size_limit_in_bytes(dataset, tmp_path):
    records_path, media, _ = dataset
    config = SMALL.model_copy(update={"shard_size": 100, "shard_max_mb": 1})
    big = media / "big.mp4"
    big.write_bytes((media / "clips" / "c0.mp4").read_bytes() + b"\0" * (1100 << 10))  # > 1 MiB on its own
    rows = json.loads(records_path.read_text()) + [record("big-1", "big.mp4"), record("big-2", "clips/c1.mp4")]
    records_path.write_text(json.dumps(rows))
    report = pack_shards(records_path, media, str(tmp_path / "out"), data_config=config, probe=False)
    sizes = [s.num_records for s in open_shards(str(tmp_path / "out")).index.shards]
    # the big clip would overflow the first shard, and fills its own; the next record starts a third
    assert report.num_records == 9 and sizes == [7, 1, 1]


def test_readers_see_a_consistent_dataset_while_it_is_repacked(tmp_path):
    """Two variants are packed alternately to one URI while a reader opens and reads it in a loop:
    every open sees one whole variant (index, entries and media agree), never a mix."""
    variants = {}
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        media = tmp_path / f"media-{name}"
        rows = [record(f"{name}{i}", f"v{i}.mp4") for i in range(4)]
        for i in range(4):
            write_clip(media / f"v{i}.mp4", frames=8 + i, colour=colour)
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
        variants[name] = media
    out = str(tmp_path / "out")
    pack_shards(tmp_path / "a.json", variants["a"], out, data_config=SMALL, probe=False)
    complete, errors, stop = [], [], threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            try:
                shards = open_shards(out)
                entries = list(shards.entries())
                variant = {entry.id[0] for _, entry in entries}
                assert len(variant) == 1 and len(entries) == shards.index.num_records == 4
                media = variants[variant.pop()]
                for shard, entry in entries:
                    assert shards.read_media(shard, entry) == (media / entry.record["path"]).read_bytes()
                complete.append(shards.index.generation)
            except ShardsNotFound as exc:  # its generation was replaced twice meanwhile: said so, reopen
                assert "replaced" in str(exc)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
                return

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for name in "babab":
            pack_shards(tmp_path / f"{name}.json", variants[name], out, data_config=SMALL, probe=False)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors
    assert len(set(complete)) >= 2


def test_missing_locations_and_foreign_indexes_are_clear_errors(tmp_path):
    with pytest.raises(ShardsNotFound, match="no such location"):
        open_shards(str(tmp_path / "never-written"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardsNotFound, match="no shards here"):
        open_shards(str(tmp_path / "empty"))
    (tmp_path / "empty" / INDEX_KEY).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ShardFormatError, match="not a VideoP2R shard index"):
        open_shards(str(tmp_path / "empty"))


def test_inspect_counts_and_finds_unreadable_media(dataset, tmp_path):
    records_path, media, rows = dataset
    good = (media / "clips" / "c2.mp4").read_bytes()
    (media / "broken.mp4").write_bytes(good[:200] + np.random.default_rng(1).bytes(len(good) - 200))
    records_path.write_text(json.dumps(rows + [record("broken-1", "broken.mp4", "OCR"), record("gone", "gone.mp4")]))
    pack_shards(records_path, media, str(tmp_path / "out"), data_config=SMALL, probe=False)  # broken goes in
    report = inspect_shards(str(tmp_path / "out"), SMALL)
    assert report.num_records == 8
    assert report.counts["problem_type"]["OCR"] == 2
    assert [(u.id, u.media) for u in report.unreadable] == [("broken-1", "media/broken.mp4")]
    # one probe per stored media: the clip shared by records 0 and 6 is stored (and probed) in both shards
    assert report.media_checked == 8
    assert [s.id for s in report.skipped_at_pack] == ["gone"]
    assert report.problems == []
    text = report.format_text()
    assert "broken-1" in text and "missing_media 1" in text


def test_cli_pack_and_inspect(dataset, tmp_path, capsys):
    records_path, media, _ = dataset
    out = str(tmp_path / "cli-out")
    code = cli_main(["data", "pack", "--records", str(records_path), "--media-root", str(media), "--out", out,
                     "--shard-size", "4", "data.video_max_pixels=6272", "data.video_min_pixels=3136"])
    assert code == 0
    assert "packed 7 records into 2 shards" in capsys.readouterr().out
    assert cli_main(["data", "inspect", out, "data.video_max_pixels=6272", "data.video_min_pixels=3136",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["problem_type"]["numerical"] == 2 and summary["unreadable"] == []
    assert cli_main(["data", "inspect", out, "--no-decode"]) == 0
    assert "not checked" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys, dataset):
    records_path, media, _ = dataset
    assert cli_main(["data", "inspect", str(tmp_path / "nothing")]) == 1
    assert "no such location" in capsys.readouterr().err
    assert cli_main(["data", "pack", "--records", str(tmp_path / "none.json"), "--media-root", str(media),
                     "--out", str(tmp_path / "o")]) == 1
    assert "records file not found" in capsys.readouterr().err
    assert cli_main(["data", "pack", "--records", str(records_path), "--media-root", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "o")]) == 1
    assert "media root" in capsys.readouterr().err
    assert cli_main(["data", "pack", "--records", str(records_path), "--media-root", str(media),
                     "--out", str(tmp_path / "o"), "data.shard_size=0"]) == 2
    assert "data.shard_size" in capsys.readouterr().err
