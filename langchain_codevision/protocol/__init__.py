"""The CodeVision protocol, pure: what the model sees and how its text is read.

Nothing here imports the loop, the kernel or a model; nothing does I/O except reading this
package's own data (the release's prompt, schema and chat template in ``release/``).

* Profiles (:mod:`.profiles`): :data:`RELEASE` (the CodeVision release byte for byte) and
  :data:`DEFAULT` (this package's richer protocol); :func:`get_profile`.
* Prompts and schema (:mod:`.prompts`, :mod:`.schema`): system prompts, the
  ``code_image_tool`` schema, the hermes ``# Tools`` block.
* Reply texts (:mod:`.replies`), failures (:mod:`.failures`) and hints (:mod:`.hints`).
* Answers (:mod:`.answers`): :func:`extract_answer` and :func:`answers_match` with the
  release's rules; named evaluation rules beside them.
* Reading model text (:mod:`.tags`, :mod:`.json_repair`) and code repair
  (:mod:`.code_repair`).

Two dialects share one executor: ``"text"`` (``<think>``, ``<tool_call>{json}</tool_call>``
and ``<answer>`` tags in plain text; tool replies are user turns wrapped in
``<tool_response>`` tags, as Qwen chat templates render a ``tool`` turn) and ``"tools"``
(native tool calling; replies are ``ToolMessage`` objects with image content blocks).
"""

from __future__ import annotations

from ._release import release_chat_template, release_system_prompt, release_tool_schema
from .answers import (
    AnswerMatch,
    answers_match,
    extract_answer,
    match_answer,
    normalised_match,
    ocrbench_match,
)
from .code_repair import guard_crops, repair_code, strip_fences
from .failures import Failure, FailureReason, make_failure
from .hints import hint_for, trim_for_model
from .json_repair import loads_tolerant
from .profiles import DEFAULT, RELEASE, ProtocolProfile, get_profile
from .prompts import (
    FINAL_ANSWER_REQUEST,
    TEXT_SYSTEM_PROMPT,
    TOOLS_SYSTEM_PROMPT,
    Dialect,
    default_system_prompt,
    load_system_prompt,
)
from .replies import (
    NOT_RUN_TEXT,
    RELEASE_SUCCESS,
    RELEASE_TAIL,
    TOOL_RESPONSE_CLOSE,
    TOOL_RESPONSE_OPEN,
    TOOL_TURN_MARK,
    DefaultReplies,
    ReleaseReplies,
    error_text,
    success_text,
    unwrap_tool_response,
    wrap_tool_response,
)
from .schema import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    CodeImageToolInput,
    render_tools_block,
    split_tools_block,
    tool_schema,
)
from .tags import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    MalformedToolCall,
    ParsedOutput,
    ParsedToolCall,
    format_tool_call,
    parse_model_output,
)

RESULT_NAMES = DEFAULT.result_names
"""Where the default profile looks for the processed image, in order."""

__all__ = [
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
