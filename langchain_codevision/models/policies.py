"""Policies written in code: chat models that speak the CodeVision text protocol.

* :class:`TextPolicyModel`: the base; a subclass computes the next reply from the
  conversation in :meth:`~TextPolicyModel.reply` (the offline default and the synthesis
  teachers are such policies).
* :class:`OfflineOrientationModel`: a rotation-only policy, kept for its callers; the
  offline default is now :class:`~langchain_codevision.models.ocr_policy.OfflineOCRModel`,
  which reads the text and answers questions about it.

:class:`OfflineOrientationModel` needs no weights and no network. It handles one job, the
paper's motivating one, for real: find out how a text page is rotated and restore it. Its
first tool call measures the ink layout in the kernel (line direction from projection
profiles, text alignment from the ink's centre of mass) and prints a verdict; its second
call applies the fix the verdict implies; then it answers. Every step runs in the sandboxed
kernel like a model's would, so it exercises the whole loop, and it doubles as a baseline
policy for evaluation. It assumes left-aligned horizontal text lines.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_codevision.protocol import TOOL_NAME, TOOL_TURN_MARK, format_tool_call

__all__ = ["MEASURE_CODE", "OfflineOrientationModel", "TextPolicyModel"]


class TextPolicyModel(BaseChatModel):
    """A chat model whose reply is computed by :meth:`reply` (text dialect)."""

    @property
    def codevision_dialect(self) -> str:
        """Policies write the text protocol (``<think>``, ``<tool_call>``, ``<answer>``)."""
        return "text"

    def reply(self, messages: list[BaseMessage]) -> str | AIMessage:
        """The next assistant turn for ``messages``."""
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self.reply(list(messages))
        if isinstance(answer, str):
            answer = AIMessage(answer, response_metadata={"model_name": self._llm_type})
        return ChatResult(generations=[ChatGeneration(message=answer)])


MEASURE_CODE = """\
gray = np.asarray(image.convert("L"), dtype=np.float32)
ink = (gray < 0.5 * gray.max()).astype(np.float32)
rows, cols = ink.sum(axis=1), ink.sum(axis=0)
def peakiness(profile):
    return float(profile.var() / (profile.mean() ** 2 + 1e-9))
horizontal = peakiness(rows) >= peakiness(cols)
ys, xs = np.nonzero(ink)
cx = (xs.mean() - xs.min()) / max(xs.max() - xs.min(), 1)
cy = (ys.mean() - ys.min()) / max(ys.max() - ys.min(), 1)
if horizontal:
    applied = 0 if cx <= 0.5 else 180
else:
    applied = 90 if cy > 0.5 else 270
print(f"lines={'horizontal' if horizontal else 'vertical'} cx={cx:.2f} cy={cy:.2f}")
print(f"VERDICT rotate_{applied}")
result = image
"""

_VERDICT = re.compile(r"VERDICT rotate_(\d+)")


def _tool_turns(messages: list[BaseMessage]) -> list[str]:
    texts = []
    for message in messages:
        if isinstance(message, HumanMessage) and message.additional_kwargs.get(TOOL_TURN_MARK):
            texts.append(message.text)
    return texts


class OfflineOrientationModel(TextPolicyModel):
    """A rule-based text-protocol policy that detects and undoes page rotation."""

    @property
    def _llm_type(self) -> str:
        return "codevision-offline-orientation"

    def reply(self, messages: list[BaseMessage]) -> str:
        """Measure first, then fix, then answer (see the module docs)."""
        replies = _tool_turns(messages)
        if not replies:
            return (
                "<think>Before reading, check the page orientation: measure whether the text "
                "lines run horizontally and which side the text is aligned to.</think>\n"
                + format_tool_call(
                    TOOL_NAME,
                    {"code": MEASURE_CODE, "description": "measure orientation", "image_index": 0},
                )
            )
        verdicts = [int(m.group(1)) for text in replies for m in _VERDICT.finditer(text)]
        if not verdicts:
            return "<think>The measurement failed.</think><answer>unknown orientation</answer>"
        applied = verdicts[-1]
        fix = (360 - applied) % 360
        if applied == 0:
            return "<think>Lines are horizontal and left-aligned.</think><answer>rotate_0</answer>"
        if len(replies) == 1:
            return (
                f"<think>The page looks rotated by {applied} degrees counter-clockwise; rotating "
                f"by {fix} degrees restores it.</think>\n"
                + format_tool_call(
                    TOOL_NAME,
                    {
                        "code": f"result = image.rotate({fix}, expand=True)",
                        "description": f"rotate by {fix} to restore the page",
                        "image_index": 0,
                    },
                )
            )
        return f"<think>The restored page is upright.</think><answer>rotate_{applied}</answer>"
