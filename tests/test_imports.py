"""The public API is pinned."""

import langchain_codevision
from langchain_codevision import kernel

EXPECTED_ALL = [
    "ChatLocalVLM",
    "CodeVisionTool",
    "ImageCodeTool",
    "ImageInputError",
    "KernelLimits",
    "KernelPool",
    "KernelSession",
    "create_codevision_graph",
    "load_image",
    "load_system_prompt",
    "parse_model_output",
]


def test_public_api() -> None:
    assert sorted(langchain_codevision.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(langchain_codevision, name) is not None


def test_kernel_api() -> None:
    assert sorted(kernel.__all__) == [
        "ExecutionError",
        "ExecutionResult",
        "IsolationError",
        "IsolationPolicy",
        "KernelLimits",
        "KernelPool",
        "KernelSession",
        "KernelStartError",
        "OutputImage",
    ]
