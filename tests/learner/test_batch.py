"""Rollouts → DataProto: padding layout, validation of bad rollouts, driver-side batch checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videop2r.learner.batch import (
    RolloutBatchError,
    RolloutSample,
    VisionTokens,
    build_batch,
    check_batch,
    invalid_rows,
)

PAD = 0
VIDEO, IMAGE = 9, 8
VISION = VisionTokens(image_token_id=IMAGE, video_token_id=VIDEO, merge_size=2, blocked_ids=(7, 8, 9))


def video(t: int = 2, h: int = 4, w: int = 4) -> dict[str, torch.Tensor]:
    """Multimodal inputs of one clip: grid (t, h, w) → t·h·w patches, t·h·w/4 placeholder tokens."""
    return {"pixel_values_videos": torch.randn(t * h * w, 12), "video_grid_thw": torch.tensor([[t, h, w]]),
            "second_per_grid_ts": torch.tensor([1.0])}


def prompt(tokens: int = 8, *, text: int = 3) -> list[int]:
    return [1] * text + [VIDEO] * tokens + [2]


def sample(response, *, prompt_ids=None, log_probs="auto", uid="g0", mm=None) -> RolloutSample:
    lp = [-0.5] * len(response) if log_probs == "auto" else log_probs
    prompt_ids = prompt() if prompt_ids is None else prompt_ids
    mm = video() if mm is None else mm
    return RolloutSample(prompt_ids, response, mm, lp, uid=uid, weight_version=3)


def test_layout_left_pads_prompts_and_right_pads_responses():
    rows = [sample([5, 6, 4], prompt_ids=prompt(text=1)), sample([4], prompt_ids=prompt(text=4))]
    batch = build_batch(rows, pad_token_id=PAD)
    tensors = batch.batch
    assert tensors["prompts"].shape == (2, 13) and tensors["responses"].shape == (2, 3)
    assert tensors["prompts"][0, :3].tolist() == [PAD] * 3 and tensors["prompts"][1, 0] == 1
    assert tensors["responses"].tolist() == [[5, 6, 4], [4, PAD, PAD]]
    assert tensors["response_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert torch.equal(tensors["input_ids"], torch.cat([tensors["prompts"], tensors["responses"]], 1))
    assert tensors["attention_mask"][0].tolist() == [0] * 3 + [1] * 10 + [1, 1, 1]
    assert tensors["rollout_log_probs"][1].tolist() == [-0.5, 0.0, 0.0]
    assert list(batch.non_tensor_batch["uid"]) == ["g0", "g0"]
    assert batch.non_tensor_batch["weight_version"].tolist() == [3, 3]
    assert batch.non_tensor_batch["multi_modal_inputs"][1]["video_grid_thw"].tolist() == [[2, 4, 4]]
    assert batch.meta_info["pad_token_id"] == PAD


def test_log_probs_are_left_out_unless_every_rollout_has_them():
    batch = build_batch([sample([5]), sample([4], log_probs=None)], pad_token_id=PAD)
    assert "rollout_log_probs" not in batch.batch.keys()


def test_batch_splits_into_worker_chunks_with_its_ragged_inputs():
    rows = [sample([5] * (i + 1), mm=video(t=2 * (i % 2 + 1)), prompt_ids=prompt(8 * (i % 2 + 1)),
                   uid=f"g{i}") for i in range(4)]
    first, second = build_batch(rows, pad_token_id=PAD).chunk(2)
    assert list(second.non_tensor_batch["uid"]) == ["g2", "g3"]
    assert second.non_tensor_batch["multi_modal_inputs"][1]["video_grid_thw"].tolist() == [[4, 4, 4]]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(response=[]), "empty response"),
        (dict(response=[5, 6], log_probs=[-1.0]), "1 log-probs for 2 response tokens"),
        (dict(response=[5], prompt_ids=[]), "empty prompt"),
        (dict(response=[[1, 2], [3, 4]]), "1-D sequence"),
        (dict(response=[5, -1]), "negative token id"),
        (dict(response=[5], mm={"pixel_values_videos": torch.randn(16, 12)}), "must come together"),
        (dict(response=[5], mm={**video(), "video_grid_thw": torch.tensor([[2, 4, 2]])}), "needs 16"),
        (dict(response=[5], mm={**video(), "audio": torch.zeros(1)}), "unknown multimodal inputs"),
    ],
)
def test_bad_rollouts_are_named(bad, message):
    rows = [sample([4]), sample(**bad)]
    with pytest.raises(RolloutBatchError, match=message) as info:
        build_batch(rows, pad_token_id=PAD)
    assert "rollout 1" in str(info.value)


def test_no_rollouts_is_an_error():
    with pytest.raises(RolloutBatchError, match="no rollouts"):
        build_batch([], pad_token_id=PAD)


def test_invalid_rows_finds_sampled_placeholders_and_count_mismatches():
    rows = [sample([5, 6]), sample([5, VIDEO], uid="g1"), sample([5], prompt_ids=prompt(tokens=5), uid="g2")]
    batch = build_batch(rows, pad_token_id=PAD)
    reasons = invalid_rows(batch, VISION)
    assert sorted(reasons) == [1, 2]
    assert "(g1)" in reasons[1] and f"[{VIDEO}]" in reasons[1]
    assert "5 placeholder tokens" in reasons[2] and "needs 8" in reasons[2]
    with pytest.raises(RolloutBatchError, match=r"rollout 1 \(g1\).*and 1 more"):
        check_batch(batch, VISION)
    check_batch(batch.select_idxs(np.array([0])), VISION)  # the good row alone passes


def test_padding_tokens_in_the_response_are_not_mistaken_for_placeholders():
    # the pad id may coincide with a blocked id: only tokens under the response mask count
    batch = build_batch([sample([5, 6, 4]), sample([5])], pad_token_id=VIDEO)
    assert invalid_rows(batch, VISION) == {}


def test_mixed_modalities_pass_the_check():
    # video, image-less and text-only rows may share a batch: the forward runs the vision tower once
    # per micro-batch on every worker (a dummy image when a micro-batch has none), see test_mixed_step
    text_only = RolloutSample([1, 2, 3], [4], {}, None, uid="t")
    batch = build_batch([sample([5]), text_only], pad_token_id=PAD)
    check_batch(batch, VISION)
