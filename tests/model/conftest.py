"""A tiny checkpoint built once per session, and a few synthetic clips (no data module needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# one thread: OpenMP spinning under a shared, oversubscribed CPU costs 10-50x
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from videop2r.model import init_model

    return init_model("tiny", tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def processor(tiny_dir):
    from videop2r.model import load_processor

    return load_processor(tiny_dir)


@pytest.fixture(scope="session")
def model(tiny_dir):
    from videop2r.model import load_model

    return load_model(tiny_dir, device="cpu")


def moving_square(frames: int = 8, size: int = 84, step: int = 5, colour=(220, 40, 40)) -> np.ndarray:
    """uint8 (T, size, size, 3): a square moving right on grey, one position per frame."""
    clip = np.full((frames, size, size, 3), 128, dtype=np.uint8)
    for index in range(frames):
        left = 4 + index * step
        clip[index, 30:50, left:left + 20] = colour
    return clip


@pytest.fixture
def clip() -> np.ndarray:
    return moving_square()


@pytest.fixture
def make_clip():
    return moving_square
