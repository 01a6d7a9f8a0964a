"""Tiny, randomly initialised Qwen vision-language checkpoints built on the spot.

Tests, notebooks and training smoke runs need a model of the real architecture that loads
through the real ``from_pretrained`` path, without downloading anything. The builders here
make one in a few seconds on a CPU:

* a byte-level BPE tokenizer trained locally with ``tokenizers`` on a small corpus of
  protocol text and image code, carrying the Qwen special tokens;
* a ``Qwen2_5_VLForConditionalGeneration`` (or ``Qwen3VLForConditionalGeneration``) of a
  few hundred thousand random parameters;
* the matching image and video processors and a chat template that renders tools;
* everything written with ``save_pretrained``.

Example:
    >>> from langchain_codevision.models.tiny import build_tiny_qwen2_5_vl
    >>> path = build_tiny_qwen2_5_vl("/tmp/tiny-vlm")  # doctest: +SKIP
    >>> ChatLocalVLM(model=str(path), max_new_tokens=8).invoke("hi")  # doctest: +SKIP

The outputs are random text; the point is that every code path (templates, image tokens,
generation, streaming, LoRA, training) runs exactly as with a real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from langchain_codevision.models._deps import quiet_peft, require_local_stack
from langchain_codevision.models._templates import QWEN2_5_VL_TEMPLATE, QWEN_VL_TOOLS_TEMPLATE

__all__ = [
    "SPECIAL_TOKENS",
    "TEXT_TOKENS",
    "TemplateName",
    "build_tiny_lora_adapter",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
    "tiny_chat_template",
]

TemplateName = Literal["qwen3_vl", "qwen2_5_vl"]

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Control tokens; removed by ``decode(..., skip_special_tokens=True)``."""

TEXT_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
)
"""Protocol tags; single tokens that stay in decoded text (as in Qwen tokenizers)."""

_TINY_PIXELS = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
_CORPUS_LINES = (
    "You are a helpful assistant. Think step by step inside <think> </think>.",
    "Call the code tool inside <tool_call> </tool_call> or answer inside <answer> </answer>.",
    '{"name": "code_image_tool", "arguments": {"code": "result = image.rotate(90, expand=True)",'
    ' "description": "rotate the image", "image_index": 0}}',
    "from PIL import Image, ImageOps, ImageEnhance, ImageFilter, ImageDraw",
    "import numpy as np\nimport cv2\nimport math",
    "result = ImageOps.mirror(img)\nresult = ImageOps.flip(img)",
    "w, h = image.size\nresult = image.crop((0, 0, w // 2, h // 2)).resize((w, h))",
    "result = ImageEnhance.Contrast(image).enhance(2.0)",
    "arr = np.asarray(img)\nresult = Image.fromarray(cv2.GaussianBlur(arr, (3, 3), 0))",
    "The text in the image says: the quick brown fox jumps over the lazy dog.",
    "What is written in the image? Which way is the picture rotated? Answer briefly.",
    "Error: name 'imgg' is not defined. Please fix the code and try again.",
    "The answer is 42. The number of cats is 3. Yes. No. Left. Right. Up. Down.",
    "0 1 2 3 4 5 6 7 8 9 10 90 180 270 360 0.5 1.5 2.0 100 1000",
)


def tiny_chat_template(name: TemplateName = "qwen3_vl") -> str:
    """Return the chat template a tiny checkpoint is saved with.

    Args:
        name: ``"qwen3_vl"`` renders tools, tool calls and tool results (with images);
            ``"qwen2_5_vl"`` renders like the stock Qwen2.5-VL template, which has no
            notion of tools (the adapter then renders them itself).

    Returns:
        The Jinja template. For ``"qwen3_vl"``, when TRL is installed and ships its copy of
        the Qwen3-VL template, that exact string is used so that TRL recognises the
        checkpoint (assistant-only loss, tool-call parsing); it renders the same text.
    """
    if name == "qwen2_5_vl":
        return QWEN2_5_VL_TEMPLATE
    if name != "qwen3_vl":
        raise ValueError(f"unknown template {name!r}; use 'qwen3_vl' or 'qwen2_5_vl'")
    try:
        from trl.chat_template_utils import qwen3_vl_chat_template
    except Exception:  # TRL missing or without this template
        return QWEN_VL_TOOLS_TEMPLATE
    return str(qwen3_vl_chat_template)


def build_tiny_qwen2_5_vl(
    path: str | Path,
    *,
    seed: int = 0,
    chat_template: TemplateName = "qwen3_vl",
    vocab_size: int = 640,
) -> Path:
    """Build and save a tiny random Qwen2.5-VL checkpoint (about 0.3 M parameters).

    Args:
        path: Directory to write (created if needed).
        seed: Seed for the random weights (the tokenizer is deterministic).
        chat_template: Which template the processor carries (see :func:`tiny_chat_template`).
        vocab_size: Target size of the trained BPE vocabulary.

    Returns:
        The directory, loadable with ``AutoModelForImageTextToText.from_pretrained`` and
        ``AutoProcessor.from_pretrained``.
    """
    stack = require_local_stack()
    transformers = stack.transformers
    tokenizer = _train_tokenizer(vocab_size)
    ids = _token_ids(tokenizer)
    config = transformers.Qwen2_5_VLConfig(
        text_config={
            "vocab_size": _padded(len(tokenizer)),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": False,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [0],
        },
        **_vision_token_ids(ids),
    )
    model_cls = transformers.Qwen2_5_VLForConditionalGeneration
    processor = transformers.Qwen2_5_VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(
            patch_size=14, merge_size=2, temporal_patch_size=2, **_size(**_TINY_PIXELS)
        ),
        video_processor=transformers.Qwen2VLVideoProcessor(
            patch_size=14, merge_size=2, temporal_patch_size=2, **_size(**_TINY_PIXELS)
        ),
        tokenizer=tokenizer,
        chat_template=tiny_chat_template(chat_template),
    )
    return _save(path, model_cls, config, processor, tokenizer, seed)


def build_tiny_qwen3_vl(
    path: str | Path,
    *,
    seed: int = 0,
    chat_template: TemplateName = "qwen3_vl",
    vocab_size: int = 640,
) -> Path:
    """Build and save a tiny random Qwen3-VL checkpoint (patch 16, deepstack, no windows).

    Args:
        path: Directory to write (created if needed).
        seed: Seed for the random weights.
        chat_template: Which template the processor carries.
        vocab_size: Target size of the trained BPE vocabulary.

    Returns:
        The directory.

    Raises:
        ImportError: The installed transformers has no Qwen3-VL.
    """
    stack = require_local_stack()
    transformers = stack.transformers
    if not hasattr(transformers, "Qwen3VLForConditionalGeneration"):
        raise ImportError("this transformers has no Qwen3-VL; upgrade transformers")
    tokenizer = _train_tokenizer(vocab_size)
    ids = _token_ids(tokenizer)
    pixels = {"min_pixels": 32 * 32 * 4, "max_pixels": 32 * 32 * 16}
    config = transformers.Qwen3VLConfig(
        text_config={
            "vocab_size": _padded(len(tokenizer)),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        tie_word_embeddings=False,
        **_vision_token_ids(ids),
    )
    processor = transformers.Qwen3VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(
            patch_size=16, merge_size=2, temporal_patch_size=2, **_size(**pixels)
        ),
        video_processor=transformers.Qwen3VLVideoProcessor(
            patch_size=16, merge_size=2, temporal_patch_size=2, **_size(**pixels)
        ),
        tokenizer=tokenizer,
        chat_template=tiny_chat_template(chat_template),
    )
    model_cls = transformers.Qwen3VLForConditionalGeneration
    return _save(path, model_cls, config, processor, tokenizer, seed)


def build_tiny_lora_adapter(
    base_path: str | Path,
    out_path: str | Path,
    *,
    seed: int = 0,
    rank: int = 4,
    scale: float = 1.0,
) -> Path:
    """Save a LoRA adapter for a tiny checkpoint whose B weights are not zero.

    A freshly initialised LoRA is a no-op (B = 0); this one changes the model's outputs,
    which is what tests of adapter loading and merging need.

    Args:
        base_path: A checkpoint from :func:`build_tiny_qwen2_5_vl` (or Qwen3-VL).
        out_path: Directory to write the adapter to.
        seed: Seed for the adapter weights.
        rank: LoRA rank.
        scale: Multiplier on the random B weights (larger: outputs change more).

    Returns:
        The adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``),
        whose ``base_model_name_or_path`` is ``base_path``.
    """
    stack = require_local_stack(peft=True)
    torch, transformers, peft = stack.torch, stack.transformers, stack.peft
    base_path, out_path = Path(base_path), Path(out_path)
    with torch.random.fork_rng(devices=[]), quiet_peft():
        torch.manual_seed(seed)
        model = transformers.AutoModelForImageTextToText.from_pretrained(str(base_path))
        config = peft.LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)",
            init_lora_weights=False,
        )
        lora_model = peft.get_peft_model(model, config)
        with torch.no_grad():
            for name, param in lora_model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn_like(param) * scale)
        lora_model.save_pretrained(str(out_path))
    _rewrite_base_path(out_path, base_path)
    return out_path


# --------------------------------------------------------------------------- helpers


def _train_tokenizer(vocab_size: int) -> Any:
    """Train a byte-level BPE the way Qwen tokenizers split text, wrap it for transformers."""
    stack = require_local_stack()
    tokenizers, transformers = stack.tokenizers, stack.transformers
    major = int(str(transformers.__version__).split(".", 1)[0])
    if major < 5:
        raise ImportError(
            f"the tiny checkpoints need transformers>=5 (found {transformers.__version__}): "
            'pip install -U "transformers>=5"'
        )
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.normalizer = tokenizers.normalizers.NFC()
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [
            tokenizers.pre_tokenizers.Split(
                tokenizers.Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False
            ),
            tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(list(_CORPUS_LINES) * 4, trainer=trainer)
    state = json.loads(bpe.to_str())
    merges = [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]
    ]
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=state["model"]["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    added = [
        tokenizers.AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS
    ]
    added += [
        tokenizers.AddedToken(token, special=False, normalized=False) for token in TEXT_TOKENS
    ]
    tokenizer.add_tokens(added)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = None
    return tokenizer


def _token_ids(tokenizer: Any) -> dict[str, int]:
    return {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}


def _vision_token_ids(ids: dict[str, int]) -> dict[str, int]:
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def _padded(size: int, multiple: int = 64) -> int:
    return (size + multiple - 1) // multiple * multiple


def _size(min_pixels: int, max_pixels: int) -> dict[str, Any]:
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}


def _save(
    path: str | Path, model_cls: Any, config: Any, processor: Any, tokenizer: Any, seed: int
) -> Path:
    stack = require_local_stack()
    torch, transformers = stack.torch, stack.transformers
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[
            tokenizer.convert_tokens_to_ids("<|im_end|>"),
            tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        ],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(str(path))
    processor.save_pretrained(str(path))
    return path


def _rewrite_base_path(adapter_dir: Path, base_path: Path) -> None:
    config_file = adapter_dir / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = str(base_path)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
