"""The public API of each package is pinned, and the protocol stays pure."""

import subprocess
import sys

import pytest

import langchain_codevision
import langchain_codevision.eval
from langchain_codevision import kernel, loop, models, protocol, rewards

EXPECTED_ALL = [
    "ChatLocalVLM",
    "CodeVisionTool",
    "ImageCodeTool",
    "ImageInputError",
    "KernelLimits",
    "KernelPool",
    "KernelSession",
    "OfflineOCRModel",
    "ProtocolProfile",
    "create_codevision_graph",
    "get_profile",
    "load_image",
    "load_system_prompt",
    "parse_model_output",
    "score_group",
    "score_rollout",
    "trajectory_images",
]

PROTOCOL_ALL = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "DEFAULT",
    "FINAL_ANSWER_REQUEST",
    "NOT_RUN_TEXT",
    "RELEASE",
    "RELEASE_SUCCESS",
    "RELEASE_TAIL",
    "RESULT_NAMES",
    "TEXT_SYSTEM_PROMPT",
    "TOOLS_SYSTEM_PROMPT",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "TOOL_RESPONSE_CLOSE",
    "TOOL_RESPONSE_OPEN",
    "TOOL_TURN_MARK",
    "AnswerMatch",
    "CodeImageToolInput",
    "DefaultReplies",
    "Dialect",
    "Failure",
    "FailureReason",
    "MalformedToolCall",
    "ParsedOutput",
    "ParsedToolCall",
    "ProtocolProfile",
    "ReleaseReplies",
    "answers_match",
    "default_system_prompt",
    "error_text",
    "extract_answer",
    "format_tool_call",
    "get_profile",
    "guard_crops",
    "hint_for",
    "load_system_prompt",
    "loads_tolerant",
    "make_failure",
    "match_answer",
    "normalised_match",
    "ocrbench_match",
    "parse_model_output",
    "release_chat_template",
    "release_system_prompt",
    "release_tool_schema",
    "render_tools_block",
    "repair_code",
    "split_tools_block",
    "strip_fences",
    "success_text",
    "tool_schema",
    "trim_for_model",
    "unwrap_tool_response",
    "wrap_tool_response",
]

LOOP_ALL = [
    "CodeVisionInput",
    "CodeVisionNodes",
    "CodeVisionOutput",
    "CodeVisionState",
    "Decision",
    "EpisodeKernels",
    "ExecuteDecision",
    "ExecutionWork",
    "FinishDecision",
    "ImageAwareSerializer",
    "LimitDecision",
    "PendingCall",
    "PlannedCall",
    "ReflectDecision",
    "Step",
    "ToolExecutor",
    "create_codevision_graph",
    "default_pool",
    "image_aware",
    "resolve_dialect",
]

MODELS_ALL = [
    "ChatLocalVLM",
    "OfflineOCRModel",
    "OfflineOrientationModel",
    "TextPolicyModel",
    "build_tiny_lora_adapter",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
    "tiny_chat_template",
]

KERNEL_ALL = [
    "ExecutionError",
    "ExecutionResult",
    "GatewayKernelSession",
    "IsolationError",
    "IsolationPolicy",
    "JailPlan",
    "KernelLimits",
    "KernelPool",
    "KernelSession",
    "KernelStartError",
    "OutputImage",
    "plan_jail",
]

EVAL_ALL = [
    "PAPER_COLUMNS",
    "EvalItem",
    "EvalRun",
    "Score",
    "aevaluate",
    "evaluate",
    "load_dataset",
    "orientation_diagnostic",
    "read_results",
    "score_item",
    "summarise",
    "transformed_variants",
    "write_outputs",
    "write_viewer",
]

REWARDS_ALL = [
    "CORE_OPS",
    "ORIENTATION_OPS",
    "TERMS",
    "CallOps",
    "CallRule",
    "ChatJudge",
    "GroupStats",
    "Judge",
    "OpsMode",
    "RewardBreakdown",
    "RewardWeights",
    "Rollout",
    "RolloutTurn",
    "Term",
    "ToolCall",
    "best_iou",
    "box_iou",
    "compute_score",
    "compute_score_batch",
    "decode_response",
    "group_stats",
    "parse_ops",
    "parse_verdict",
    "render_response",
    "score_group",
    "score_rollout",
    "task_type",
]


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (langchain_codevision, EXPECTED_ALL),
        (protocol, PROTOCOL_ALL),
        (loop, LOOP_ALL),
        (models, MODELS_ALL),
        (kernel, KERNEL_ALL),
        (rewards, REWARDS_ALL),
        (langchain_codevision.eval, EVAL_ALL),
    ],
    ids=["langchain_codevision", "protocol", "loop", "models", "kernel", "rewards", "eval"],
)
def test_public_names_are_pinned(package, expected) -> None:
    assert sorted(package.__all__) == sorted(expected)
    for name in expected:
        assert getattr(package, name) is not None


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("langchain_codevision.graph", "create_codevision_graph", loop.create_codevision_graph),
        ("langchain_codevision.graph", "resolve_dialect", loop.resolve_dialect),
        ("langchain_codevision.parsing", "parse_model_output", protocol.parse_model_output),
        ("langchain_codevision.parsing", "format_tool_call", protocol.format_tool_call),
        ("langchain_codevision.repair", "repair_code", protocol.repair_code),
        ("langchain_codevision.reflect", "hint_for", protocol.hint_for),
        ("langchain_codevision.messages", "TOOL_TURN_MARK", protocol.TOOL_TURN_MARK),
        ("langchain_codevision.episodes", "EpisodeKernels", loop.EpisodeKernels),
        ("langchain_codevision.offline", "OfflineOrientationModel", models.OfflineOrientationModel),
        ("langchain_codevision.policy", "TextPolicyModel", models.TextPolicyModel),
        ("langchain_codevision.checkpointing", "image_aware", loop.image_aware),
    ],
)
def test_old_import_paths_still_work(old, name, new) -> None:
    module = __import__(old, fromlist=[name])
    assert getattr(module, name) is new


def test_the_protocol_imports_nothing_of_the_loop() -> None:
    probe = (
        "import sys, langchain_codevision.protocol as p; p.get_profile('release');"
        "bad = [m for m in sys.modules if m.startswith(('langchain_codevision.loop',"
        " 'langchain_codevision.kernel', 'langchain_codevision.models', 'langgraph', 'PIL'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
