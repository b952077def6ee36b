"""Checkpoints on the object store: "latest" only ever names a complete checkpoint."""

from __future__ import annotations

import pytest

from videop2r.storage import open_store
from videop2r.train.checkpoint import CheckpointError, CheckpointStore, download_prefix, upload_dir


def _write_step(ckpts: CheckpointStore, step: int, payload: bytes = b"weights") -> None:
    ckpt = ckpts.for_step(step)
    ckpts.store.put_bytes(ckpt.key("learner/dcp/__0_0.distcp"), payload)
    ckpts.store.put_bytes(ckpt.key("hf/model.safetensors"), payload * 2)
    ckpts.publish(ckpt, {"step": step, "cursor": {"epoch": 0, "position": step}}, {"rng": step})


@pytest.fixture
def ckpts(tmp_path):
    return CheckpointStore(open_store(str(tmp_path / "store")), "checkpoints/run/pa_grpo", keep=0)


def test_publish_then_latest_names_it_with_its_driver_state(ckpts):
    assert ckpts.latest() is None
    _write_step(ckpts, 1)
    _write_step(ckpts, 2)
    latest = ckpts.latest()
    assert latest.step == 2 and latest.prefix == "checkpoints/run/pa_grpo/step-000002"
    state, rng = ckpts.driver_state(latest)
    assert state["cursor"] == {"epoch": 0, "position": 2} and rng == {"rng": 2}
    manifest = ckpts.store.get_json(latest.key("MANIFEST.json"))
    assert set(manifest["objects"]) == {"learner/dcp/__0_0.distcp", "hf/model.safetensors", "driver.json",
                                        "driver-rng.pkl"}


def test_a_crash_before_the_manifest_leaves_latest_on_the_previous_step(ckpts):
    _write_step(ckpts, 1)
    half = ckpts.for_step(2)  # killed while uploading step 2: files but no manifest, no pointer move
    ckpts.store.put_bytes(half.key("learner/dcp/__0_0.distcp"), b"partial")
    assert ckpts.latest().step == 1
    assert not ckpts.is_complete(half)


def test_a_damaged_pointer_or_object_falls_back_to_the_newest_complete_step(ckpts):
    _write_step(ckpts, 1)
    _write_step(ckpts, 2)
    ckpts.store.put_bytes("checkpoints/run/pa_grpo/latest", b"{not json")
    assert ckpts.latest().step == 2
    # an object of step 2 shrinks (truncated upload): its manifest no longer checks out
    ckpts.store.put_bytes(ckpts.for_step(2).key("hf/model.safetensors"), b"x")
    ckpts.store.put_json("checkpoints/run/pa_grpo/latest", {"step": 2, "prefix": "checkpoints/run/pa_grpo/step-000002"})
    assert ckpts.latest().step == 1


def test_keep_prunes_old_complete_checkpoints(tmp_path):
    ckpts = CheckpointStore(open_store(str(tmp_path)), "ck/r/sft", keep=2)
    for step in (1, 2, 3, 4):
        _write_step(ckpts, step)
    assert ckpts.steps() == [3, 4]
    assert ckpts.latest().step == 4


def test_resume_without_checkpoint_is_a_clear_error(ckpts):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        ckpts.require_latest()


def test_directories_round_trip_through_the_store(tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.bin").write_bytes(b"a")
    (source / "sub" / "b.bin").write_bytes(b"bb")
    store = open_store(str(tmp_path / "store"))
    assert upload_dir(store, "x/y", source) == 2
    out = download_prefix(store, "x/y", tmp_path / "dst")
    assert (out / "sub" / "b.bin").read_bytes() == b"bb"
    with pytest.raises(CheckpointError):
        download_prefix(store, "nothing", tmp_path / "none")
