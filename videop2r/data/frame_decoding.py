"""Decode only the frames a sampling plan wants, and convert each of them once (see `videop2r.data.video`).

For each wanted frame decoding starts at the last keyframe before it (one it does not lead, so an
open GOP is handled); whole GOPs without a wanted frame are skipped; H.264 packets that nothing
references (nal_ref_idc = 0) are not decoded unless wanted; a wanted frame goes through swscale
once, from the decoder's YUV straight to RGB at the output size.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from videop2r.data.media import MediaError
from videop2r.data.vision_rules import VideoSamplingPlan

# Full-resolution chroma in the horizontal pass: without it a 4:2:0 source's colour edges come out
# visibly sharper than the reference's (upsample to RGB, then antialiased resize); with it the
# mean difference to the reference halves for < 1 ms per frame.
_CHROMA = Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
SWS_INTERPOLATION = {
    "bicubic": Interpolation.BICUBIC | _CHROMA,
    "bilinear": Interpolation.BILINEAR | _CHROMA,
    "area": Interpolation.AREA | _CHROMA,
}


# --------------------------------------------------------------------------- H.264 packets


def _h264_length_size(extradata: bytes | None) -> int | None:
    """NAL length-prefix size of AVCC ("avc1") H.264, or None for Annex B start codes."""
    if extradata and len(extradata) >= 5 and extradata[0] == 1:
        return (extradata[4] & 0x03) + 1
    return None


def _nal_headers(data: memoryview, length_size: int | None) -> Iterator[int]:
    """First byte of each NAL unit of one packet."""
    if length_size is not None:
        pos, end = 0, len(data)
        while pos + length_size < end:
            size = int.from_bytes(data[pos : pos + length_size], "big")
            pos += length_size
            if size <= 0 or pos + size > end:
                return
            yield data[pos]
            pos += size
        return
    raw = bytes(data)
    pos = raw.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(raw):
        yield raw[pos + 3]
        pos = raw.find(b"\x00\x00\x01", pos + 3)


def _h264_disposable(packet: av.Packet, length_size: int | None) -> bool:
    """True if every coded slice of the packet has nal_ref_idc = 0: no other frame uses it."""
    slices = 0
    for header in _nal_headers(memoryview(packet), length_size):
        nal_type = header & 0x1F
        if 1 <= nal_type <= 5:
            if header >> 5 & 0x03:
                return False
            slices += 1
    return slices > 0


# --------------------------------------------------------------------------- decoding plan


def _decode_ranges(pts: list[int], keyframes: list[int], wanted: Iterable[int]) -> list[tuple[int, int]]:
    """Decode-order ranges [start, end] that produce every wanted packet position.

    Each wanted position starts at the last keyframe at or before it whose presentation time
    is not after the wanted frame's (a frame shown before its GOP's keyframe is a leading
    picture of an open GOP and needs the previous GOP). Overlapping or touching ranges merge.
    """
    spans = []
    for pos in sorted(wanted):
        k = bisect.bisect_right(keyframes, pos) - 1
        while k > 0 and pts[pos] < pts[keyframes[k]]:
            k -= 1
        spans.append((keyframes[k] if k >= 0 else 0, pos))
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


class FrameSink:
    """Converts the wanted decoded frames to RGB at the output size, in place."""

    def __init__(self, plan: VideoSamplingPlan, interpolation: Interpolation) -> None:
        self.plan = plan
        self.frames = np.empty((plan.nframes, plan.height, plan.width, 3), dtype=np.uint8)
        self.filled = np.zeros(plan.nframes, dtype=bool)
        self.slot = {index: slot for slot, index in enumerate(plan.frame_indices)}
        self.reformatter = VideoReformatter()
        self.interpolation = interpolation
        self.untimed_frames = 0  # decoded frames that came out without a timestamp

    def put(self, index: int | None, frame: av.VideoFrame) -> None:
        if index is None and frame.pts is None:
            self.untimed_frames += 1
        slot = self.slot.get(index) if index is not None else None
        if slot is None or self.filled[slot] or frame.is_corrupt:
            return
        rgb = self.reformatter.reformat(
            frame,
            width=self.plan.width,
            height=self.plan.height,
            format="rgb24",
            interpolation=self.interpolation,
            threads=1,
        )
        self.frames[slot] = rgb.to_ndarray()
        self.filled[slot] = True

    @property
    def done(self) -> bool:
        return bool(self.filled.all())

    def missing(self) -> list[int]:
        return [self.plan.frame_indices[s] for s in np.flatnonzero(~self.filled)]


def _decode(codec: av.codec.context.CodecContext, packet: av.Packet | None, label: str, errors: list[str]):
    try:
        return codec.decode(packet)
    except av.FFmpegError as exc:  # a damaged packet: keep going, the wanted frames decide
        errors.append(str(exc))
        if len(errors) > 50:
            raise MediaError("corrupt", f"{label}: too many decode errors ({exc})") from None
        return []


def decode_by_timestamp(
    codec, packets: list[av.Packet], pts: list[int], plan: VideoSamplingPlan, sink: FrameSink, label: str
) -> list[str]:
    """Feed `sink` the plan's frames, matched by timestamp, decoding only the ranges they need; the
    decoder errors met on the way (a damaged packet is skipped, the wanted frames decide)."""
    order = sorted(range(len(packets)), key=pts.__getitem__)
    wanted_positions = {order[i] for i in plan.frame_indices}
    index_of_pts = {pts[order[i]]: i for i in plan.frame_indices}
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe] or [0]
    disposable_ok = codec.name == "h264"
    length_size = _h264_length_size(codec.extradata) if disposable_ok else None
    errors: list[str] = []
    previous_end = None
    for start, end in _decode_ranges(pts, keyframes, wanted_positions):
        if previous_end is not None and start != previous_end + 1:
            for frame in _decode(codec, None, label, errors):  # drain before jumping ahead
                sink.put(index_of_pts.get(frame.pts), frame)
            codec.flush_buffers()
        for pos in range(start, end + 1):
            if pos not in wanted_positions and disposable_ok and _h264_disposable(packets[pos], length_size):
                continue
            for frame in _decode(codec, packets[pos], label, errors):
                sink.put(index_of_pts.get(frame.pts), frame)
        previous_end = end
    for frame in _decode(codec, None, label, errors):
        sink.put(index_of_pts.get(frame.pts), frame)
    return errors


def decode_in_order(codec, packets: list[av.Packet], sink: FrameSink, label: str) -> list[str]:
    """Fallback for streams without usable timestamps: the n-th decoded frame is frame n."""
    errors: list[str] = []
    count = 0
    for packet in [*packets, None]:
        for frame in _decode(codec, packet, label, errors):
            sink.put(count, frame)
            count += 1
        if sink.done:
            break
    return errors
