"""Model directories and architectures: clear errors for what autopeft cannot tune."""

from __future__ import annotations

import pytest

from autopeft.encoder import EncoderLayout, resolve_model_dir
from autopeft.errors import ModelError
from autopeft.shape import model_shape, shape_of
from tests.conftest import tiny_model


def test_bundled_model_is_the_default():
    shape = model_shape(None)
    assert (shape.model_type, shape.n_layers, shape.hidden) == ("bert", 6, 384)
    assert 22_000_000 < shape.backbone_params < 23_000_000


def test_shape_from_config_matches_the_built_model(tiny_model_dir):
    assert model_shape(tiny_model_dir) == shape_of(tiny_model("bert"))


def test_roberta_head_is_counted_as_head():
    shape = shape_of(tiny_model("roberta"))
    assert shape.head_params == 32 * 32 + 32 + 32 * 2 + 2  # dense + out_proj


@pytest.mark.parametrize("make", ["missing", "not_hf"])
def test_a_path_that_is_not_a_model_is_refused(tmp_path, make):
    path = tmp_path / "nothing" if make == "missing" else tmp_path
    with pytest.raises(ModelError, match="not a"):
        resolve_model_dir(path)


def test_unsupported_architecture_is_named():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(ModelError, match="unsupported architecture 'gpt2'"):
        EncoderLayout(model)


def test_every_file_of_a_model_folder_must_resolve_inside_the_roots(tmp_path, tiny_model_dir):
    """Issue 27: ``from_pretrained`` reads several files of a model folder; each one, at any depth and through
    linked folders, must lie inside the roots. A link back into the folder is walked once."""
    import shutil

    from autopeft.confine import entries_outside, real_roots

    root, outside = tmp_path / "models", tmp_path / "elsewhere"
    shutil.copytree(tiny_model_dir, root / "tiny")
    outside.mkdir()
    (outside / "vocab.txt").write_text("secret")
    assert resolve_model_dir(root / "tiny", [root]) == (root / "tiny").resolve()

    (root / "shared").mkdir()
    (root / "shared" / "vocab.txt").symlink_to(outside / "vocab.txt")
    (root / "tiny" / "tokenizer").symlink_to(root / "shared", target_is_directory=True)  # inside: walked
    (root / "tiny" / "loop").symlink_to(root / "tiny", target_is_directory=True)
    assert entries_outside(root / "tiny", real_roots([root])) == ["tokenizer/vocab.txt"]
    with pytest.raises(ModelError, match="tokenizer/vocab.txt leads outside the folders this worker may read") as err:
        resolve_model_dir(root / "tiny", [root])
    assert str(outside) not in str(err.value)
    assert resolve_model_dir(root / "tiny") == (root / "tiny").resolve()  # no roots (autopeft train): anywhere
    assert entries_outside(root / "tiny", real_roots([root]), limit=3) is None
