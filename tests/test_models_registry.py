"""Family lookup and the model-loading door: unknown families, folders without a processor."""

from __future__ import annotations

import pytest
import torch
from tiny_models import _llama_config, build_llava

from mmpid.errors import InputError, ModelFamilyError, ModelNotFoundError, OptionError
from mmpid.models import FAMILIES, adapter_class, load_adapter, supported_families
from mmpid.models.base import Adapter, resolve_dtype
from mmpid.models.hooks import pool
from mmpid.models.spans import find_subsequence, question_token_positions


def test_every_registered_family_imports():
    """Every family the registry lists resolves to an adapter class: a missing module fails here."""
    for model_type in FAMILIES:
        cls = adapter_class(model_type)
        assert issubclass(cls, Adapter), model_type
        assert isinstance(cls.family, str) and cls.family, model_type
        module, _, name = FAMILIES[model_type].partition(":")
        assert (cls.__module__, cls.__name__) == (module, name)


def test_unknown_family_lists_supported(tmp_path):
    _llama_config(10).save_pretrained(tmp_path)
    with pytest.raises(ModelFamilyError, match=r"No adapter for model family 'llama'.*llava.*llava_next"):
        load_adapter(str(tmp_path), device="cpu")
    assert supported_families() == sorted(supported_families())


def test_missing_folder_says_so(tmp_path):
    """A path that does not exist is "no such folder", not a hub-id syntax error."""
    with pytest.raises(ModelNotFoundError, match="No such model folder: '.*nothing'"):
        load_adapter(str(tmp_path / "nothing"), device="cpu")
    with pytest.raises(ModelNotFoundError, match="No such model folder: '/nonexistent/model'"):
        load_adapter("/nonexistent/model")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_adapter(str(tmp_path / "file"))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelFamilyError, match="Could not read a model config"):
        load_adapter(str(tmp_path), device="cpu")


def test_zoo_names_load_like_analyze():
    """load_adapter takes zoo:NAME as analyze does; an unknown name lists the shipped ones."""
    a = load_adapter("zoo:normal", device="cpu")
    assert a.n_layers > 1 and "normal" in a.describe()["id"]
    with pytest.raises(OptionError, match=r"'model' must be .*\['zoo:blind', 'zoo:hinted', 'zoo:normal', 'zoo:shuffle', 'zoo:smol'\]; got 'zoo:nope'"):
        load_adapter("zoo:nope")


def test_model_folder_without_processor(tmp_path):
    path = build_llava(tmp_path / "m")
    for f in path.iterdir():
        if f.name not in {"config.json", "model.safetensors", "generation_config.json"}:
            f.unlink()
    with pytest.raises(ModelFamilyError, match=r"processor.*save_pretrained"):
        load_adapter(str(path), device="cpu")


def test_tokenizer_only_is_not_a_processor(tmp_path):
    path = build_llava(tmp_path / "m")
    for f in path.iterdir():
        if f.name in {"processor_config.json", "preprocessor_config.json"}:
            f.unlink()
    with pytest.raises(ModelFamilyError, match="processor"):
        load_adapter(str(path), device="cpu")


def test_bad_device_and_dtype(tmp_path):
    path = build_llava(tmp_path / "m")
    with pytest.raises(InputError, match="'device'.*Got 'tpu'"):
        load_adapter(str(path), device="tpu")
    with pytest.raises(InputError, match="'dtype'.*Got 'int8'"):
        resolve_dtype("int8", torch.device("cpu"))
    a = load_adapter(str(path), device="cpu", dtype="bfloat16")
    assert a.dtype == torch.bfloat16 and resolve_dtype(None, torch.device("cpu")) == torch.float32


def test_span_helpers():
    assert find_subsequence([1, 2, 3, 1, 2], [1, 2]) == 3
    assert find_subsequence([1, 2, 3], [4]) == -1
    offsets = [(0, 4), (5, 7), (7, 7), (8, 12), (13, 22)]
    special = [False, False, True, False, False]
    # question spans characters 5..12: the tokens at 5-7 and 8-12, not the special empty one
    assert question_token_positions(offsets, (5, 12), special) == [1, 3]
    h = torch.arange(24, dtype=torch.float32).reshape(1, 4, 6)
    m = torch.tensor([[False, True, True, False]])
    torch.testing.assert_close(pool(h, m, "mean"), h[0, 1:3].mean(0, keepdim=True))
    torch.testing.assert_close(pool(h, m, "last"), h[0, 2:3])
    torch.testing.assert_close(pool(h, m, "max"), h[0, 2:3])
