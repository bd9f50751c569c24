"""zoo:smol's training stages on a tiny stand-in (no SmolLM2 needed): what each stage trains,
that a stopped answer training resumes to the same weights, that the alignment lands the
image tokens on the word embeddings."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmpid.zoo import smol_train as T  # noqa: E402
from mmpid.zoo.recipe import COLOURS, SHAPES, Encoded, Recipe, build_model  # noqa: E402
from mmpid.zoo.smol import add_lora  # noqa: E402

N_BASE = 49152  # SmolLM2's vocabulary; fit_smol trains the rows after it
IMAGE = N_BASE


class _Tokenizer:
    """What recipe.build_model reads of a tokenizer: SmolLM2's size plus 5 added tokens."""

    pad_token_id, bos_token_id, eos_token_id = 2, 1, 2

    def __len__(self) -> int:
        return N_BASE + 5

    def convert_tokens_to_ids(self, token: str) -> int:
        assert token == "<image>"
        return IMAGE


def _tiny(**kw) -> Recipe:
    base = dict(name="t", description="t", family="idefics3", patch_size=16, scale_factor=2, vision_hidden=16,
                vision_layers=1, text_hidden=16, text_layers=2, heads=2, steps=4, batch_size=4, warmup_steps=1,
                lr=1e-2)
    return Recipe(**{**base, **kw})


def _data(n_images: int = 6, n_questions: int = 12, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    ids = [[5, 6, *[IMAGE] * 4, 7 + int(rng.integers(0, 20)), N_BASE + 4, 8] for _ in range(n_questions)]
    answers = rng.integers(100, 113, size=n_questions).astype(np.int64)
    rows = rng.integers(0, n_images, size=n_questions).astype(np.int64)
    pixels = torch.from_numpy(rng.normal(size=(n_images, 1, 3, 64, 64)).astype(np.float32))
    return Encoded(ids, answers, rows, pixels, pixels[:1])


def _model(recipe: Recipe):
    model = build_model(recipe, _Tokenizer(), seed=0)
    add_lora(model, rank=2, seed=0)
    return model


def _trained(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_answer_training_trains_only_the_lora_and_the_added_rows(tmp_path):
    recipe = _tiny()
    model = _model(recipe)
    before = _trained(model)
    out = T.fit_smol(model, _data(), recipe, pad_id=2, seed=0, ckpt=tmp_path / "ck.pt")
    after = _trained(model)
    assert len(out["loss_curve"]) == 1 and np.isfinite(out["final_loss"])
    bridge = [k for k in before if k.startswith(("model.vision_model.", "model.connector."))]
    assert bridge and all(torch.equal(before[k], after[k]) for k in bridge)
    frozen_lm = [k for k in before if k.startswith("model.text_model.") and ".lora_" not in k
                 and "embed_tokens" not in k]
    assert frozen_lm and all(torch.equal(before[k], after[k]) for k in frozen_lm)
    emb_key = "model.text_model.embed_tokens.weight"
    assert torch.equal(before[emb_key][:N_BASE], after[emb_key][:N_BASE])
    assert not torch.equal(before[emb_key][N_BASE:], after[emb_key][N_BASE:])  # written back on exit
    lora_b = [k for k in after if k.endswith("lora_b")]
    assert lora_b and all(before[k].abs().max() == 0 for k in lora_b)
    assert any(after[k].abs().max() > 0 for k in lora_b)


def test_a_stopped_answer_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    recipe = _tiny(steps=6)
    data = _data()
    whole = _model(recipe)
    T.fit_smol(whole, data, recipe, pad_id=2, seed=0, ckpt=tmp_path / "whole.pt")

    monkeypatch.setattr(T, "CHECKPOINT_EVERY", 2)

    def stop_at_step_3(line: str) -> None:
        if line.startswith("smol step 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.fit_smol(_model(recipe), data, recipe, pad_id=2, seed=0, ckpt=tmp_path / "part.pt", log=stop_at_step_3)
    assert torch.load(tmp_path / "part.pt", weights_only=False)["state"]["step"] == 2
    lines: list[str] = []
    resumed = _model(recipe)  # a fresh process: only the checkpoint carries the training
    T.fit_smol(resumed, data, recipe, pad_id=2, seed=0, ckpt=tmp_path / "part.pt", log=lines.append)
    assert lines[0] == "smol resumed at step 2" and len(lines) == 1 + 4
    a, b = _trained(whole), _trained(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_alignment_lands_the_image_tokens_on_the_colour_and_shape_words():
    recipe = _tiny(lr=3e-3, batch_size=8)
    model = _model(recipe)
    rng = np.random.default_rng(1)
    n = 8
    pixels = torch.from_numpy(rng.normal(size=(n, 1, 3, 64, 64)).astype(np.float32))
    data = Encoded([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), pixels, pixels[:1])
    shape = np.array([0, 1, 2, 0, 1, 2, -1, 0])
    colour = np.array([0, 1, 2, 3, 4, 5, 6, -1])
    word_ids = {w: 1000 + i for i, w in enumerate([*COLOURS, *SHAPES])}
    emb = model.model.text_model.embed_tokens.weight.detach()

    def tokens():
        with torch.no_grad():
            return model.model.connector(model.model.vision_model(pixel_values=pixels.flatten(0, 1)).last_hidden_state)

    def nearest_right(tok) -> float:
        c_tab = emb[[word_ids[c] for c in COLOURS]]
        s_tab = emb[[word_ids[s] for s in SHAPES]]
        hits = []
        for k in range(recipe.n_image_tokens):
            lab, tab = (colour, c_tab) if k % 2 == 0 else (shape, s_tab)
            near = torch.cdist(tok[:, k], tab).argmin(-1).numpy()
            hits += list((near == lab)[lab >= 0])
        return float(np.mean(hits))

    out = T.align_connector(model, data, shape, colour, word_ids, recipe, seed=0, steps=300)
    assert out["final_loss"] < 0.05  # relative squared error, from about 1 at the start
    assert nearest_right(tokens()) == 1.0


def test_alignment_learning_rate_decays_to_zero(monkeypatch):
    seen: list[float] = []
    real_step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    recipe = _tiny(batch_size=2)
    model = _model(recipe)
    pixels = torch.zeros(2, 1, 3, 64, 64)
    data = Encoded([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), pixels, pixels[:1])
    word_ids = {w: 1000 + i for i, w in enumerate([*COLOURS, *SHAPES])}
    T.align_connector(model, data, np.array([0, 1]), np.array([0, 1]), word_ids, recipe, seed=0, steps=5)
    expected = [recipe.lr * 0.5 * (1 + np.cos(np.pi * s / 5)) for s in range(5)]
    assert seen == pytest.approx(expected)
