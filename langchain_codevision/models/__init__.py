"""Local vision-language models for LangChain.

- :class:`ChatLocalVLM`: a ``BaseChatModel`` over a Hugging Face checkpoint
  (``AutoModelForImageTextToText`` + ``AutoProcessor``), with optional PEFT adapter,
  tool calling through the chat template, streaming and batching. Needs the ``local``
  extra: ``pip install "langchain-codevision[local]"``.
- :class:`OfflineOCRModel`: the offline default, a rule-based policy (no weights) that
  answers questions about document images by writing OCR code for the kernel; text
  protocol and native tool calls. Needs the ``ocr`` extra.
- :mod:`~langchain_codevision.models.policies`: policies written in code that speak the
  text protocol (:class:`TextPolicyModel`, the earlier rotation-only
  :class:`OfflineOrientationModel`).
- :mod:`~langchain_codevision.models.tiny`: tiny random Qwen2.5-VL / Qwen3-VL checkpoints
  and LoRA adapters built locally in seconds, for tests, notebooks and smoke runs.

For serving at scale, run the checkpoint in vLLM and talk to it with
``ChatOpenAI(base_url="http://host:8000/v1", model=..., api_key="EMPTY")``.
"""

from langchain_codevision.models.local import ChatLocalVLM
from langchain_codevision.models.ocr_policy import OfflineOCRModel
from langchain_codevision.models.policies import OfflineOrientationModel, TextPolicyModel
from langchain_codevision.models.tiny import (
    build_tiny_lora_adapter,
    build_tiny_qwen2_5_vl,
    build_tiny_qwen3_vl,
    tiny_chat_template,
)

__all__ = [
    "ChatLocalVLM",
    "OfflineOCRModel",
    "OfflineOrientationModel",
    "TextPolicyModel",
    "build_tiny_lora_adapter",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
    "tiny_chat_template",
]
