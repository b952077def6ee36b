"""Eval fixtures: the benchmark releases of tests/eval/fixtures with tiny media written beside them,
and (for integration tests) the scripted-model rollout server shared with tests/cot."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_MODULE = "videop2r_tests_scripted_model"


def scripted_model():
    """tests/eval/scripted_model.py, loaded once under one name (tests/cot shares the same module)."""
    if _MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE, Path(__file__).with_name("scripted_model.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[_MODULE]


def write_clip(path: Path, frames: int = 8, size: int = 56, fps: int = 8) -> None:
    """An H.264 clip whose frame i is grey level 20 + 8·i with a red square (the level tells frames apart)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "10"}
        for index in range(frames):
            image = np.full((size, size, 3), min(20 + 8 * index, 250), dtype=np.uint8)
            image[8:24, 8:24] = (220, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frame_folder(folder: Path, count: int = 12, size: int = 56) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (size, size), (20 + 8 * index,) * 3).save(
            folder / f"{index + 1:05d}.jpg", quality=95
        )


# Media present in the test release; every other media path the fixtures name is missing on purpose.
CLIPS = [
    "vsibench/arkitscenes/41069025.mp4",
    "vsibench/scannet/scene0011_00.mp4",
    "mmvu/videos/Chemistry/0.mp4",
    "mmvu/videos/Thermodynamics/0.mp4",
    "vcrbench/video/videoEspresso/clip_a.mp4",
    "mvbench/video/ssv2_video/166583.mp4",
    "tempcompass/videos/1034419625.mp4",
    "tempcompass/videos/1034419625_reverse.mp4",
    "videommmu/Art/validation_Art_Theory_1.mp4",
    "videommmu/Science/validation_Math_3.mp4",
    "videomme/data/fFjv93ACGo8.mp4",
    "synthetic/videos/eval/00000.mp4",
    "synthetic/videos/eval/00001.mp4",
]


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Path:
    """A copy of tests/eval/fixtures with its media: one folder per benchmark, as released."""
    root = tmp_path_factory.mktemp("release")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    for relative in CLIPS:
        write_clip(root / relative)
    write_clip(root / "mvbench/video/star/Charades_v1_480/ZS9XR.mp4", frames=24)  # 3 s at 8 fps
    write_frame_folder(root / "mvbench/video/tvqa/frames_fps3_hq/castle_s07e04_seg02_clip_14")
    return root


@pytest.fixture(scope="session")
def emitter_server(tmp_path_factory):
    """The scripted-model rollout server (one per session, shared with tests/cot)."""
    return scripted_model().shared_server(tmp_path_factory.getbasetemp() / "emitter")


@pytest.fixture(scope="session")
def scripted():
    """The scripted_model module (EMITTED, child_env, run_until_lines, ...)."""
    return scripted_model()


@pytest.fixture(scope="session")
def emitted(scripted) -> str:
    return scripted.EMITTED
