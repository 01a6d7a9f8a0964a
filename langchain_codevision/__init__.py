"""langchain-codevision: let vision-language models think with code.

The public API, imported lazily so that ``import langchain_codevision`` stays cheap:

* :func:`create_codevision_graph`: the LangGraph loop (model -> execute -> reflect -> model),
  speaking a protocol profile (:class:`ProtocolProfile`, :func:`get_profile`:
  ``"default"`` or the CodeVision release's ``"release"``).
* :class:`CodeVisionTool`, :class:`ImageCodeTool`: LangChain tools for agents.
* :class:`KernelSession`, :class:`KernelPool`, :class:`KernelLimits`: the sandboxed kernels.
* :class:`ChatLocalVLM`: a local transformers vision-language chat model (``[local]`` extra).
* :func:`score_rollout`, :func:`score_group`: the dense tool-aware reward.
* :func:`trajectory_images`: an episode's images (``out["images"]``) as PIL images.
"""

from __future__ import annotations

from langchain_codevision._lazy import lazy_names

_EXPORTS = {
    "ChatLocalVLM": "langchain_codevision.models",
    "CodeVisionTool": "langchain_codevision.tool",
    "ImageCodeTool": "langchain_codevision.tool",
    "ImageInputError": "langchain_codevision.images",
    "ProtocolProfile": "langchain_codevision.protocol",
    "KernelLimits": "langchain_codevision.kernel",
    "KernelPool": "langchain_codevision.kernel",
    "KernelSession": "langchain_codevision.kernel",
    "OfflineOCRModel": "langchain_codevision.models",
    "create_codevision_graph": "langchain_codevision.loop.graph",
    "get_profile": "langchain_codevision.protocol",
    "load_image": "langchain_codevision.images",
    "load_system_prompt": "langchain_codevision.protocol",
    "parse_model_output": "langchain_codevision.protocol",
    "score_group": "langchain_codevision.rewards",
    "score_rollout": "langchain_codevision.rewards",
    "trajectory_images": "langchain_codevision.images",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
