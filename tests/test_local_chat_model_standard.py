"""LangChain's standard chat-model suites run against ChatLocalVLM on a tiny random model.

The tiny checkpoint has random weights: it produces text, images and tool schemas go
through the real template and processor, but it cannot follow instructions. Tests whose
assertions need an instruction-following model (the right tool with the right arguments,
structured output matching a schema) are marked ``xfail`` with that reason; the same
capabilities are covered deterministically in ``test_local_chat_model.py`` with scripted
generations. The suite's image tests download their picture over HTTP, which this offline
environment cannot do: they are replaced by the same checks on a locally made image.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("langchain_tests")

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from PIL import Image, ImageDraw

from langchain_codevision.models import ChatLocalVLM

pytest_plugins = ("tests.local_fixtures",)

NEEDS_INSTRUCTION_FOLLOWING = pytest.mark.xfail(
    reason="a random-weight tiny model cannot choose a tool and its arguments from the prompt",
    strict=False,
)


@pytest.fixture(autouse=True)
def _tiny_paths(
    request: pytest.FixtureRequest, tiny_vlm_path: Path, tiny_vlm_other_path: Path
) -> None:
    request.cls.tiny_path = str(tiny_vlm_path)
    request.cls.other_path = str(tiny_vlm_other_path)


def diagram_base64() -> str:
    """A small diagram drawn locally (the suite downloads one; we are offline)."""
    image = Image.new("RGB", (120, 80), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 50, 40), outline="black", width=2)
    draw.line((50, 25, 90, 60), fill="blue", width=2)
    draw.text((60, 10), "A->B", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class _Params:
    tiny_path = ""
    other_path = ""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatLocalVLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.tiny_path, "min_pixels": 3136, "max_pixels": 12544}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return False  # remote URLs need ChatLocalVLM(image_loader=...)

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        return self.other_path


class TestChatLocalVLMUnit(_Params, ChatModelUnitTests):
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # The unit suite adds api_key="test" for hosted APIs; a local model has none.
        params = super().standard_chat_model_params
        params.pop("api_key", None)
        return params


class TestChatLocalVLMIntegration(_Params, ChatModelIntegrationTests):
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": 24, "timeout": 60, "stop": [], "max_retries": 2}

    # -- need a model that follows instructions ----------------------------------------
    @NEEDS_INSTRUCTION_FOLLOWING
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_tool_choice(self, model: BaseChatModel) -> None:
        super().test_tool_choice(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_bind_runnables_as_tools(self, model: BaseChatModel) -> None:
        super().test_bind_runnables_as_tools(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_unicode_tool_call_integration(
        self, model: BaseChatModel, *, tool_choice: str | None = None, force_tool_call: bool = True
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )

    @NEEDS_INSTRUCTION_FOLLOWING
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @NEEDS_INSTRUCTION_FOLLOWING
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @NEEDS_INSTRUCTION_FOLLOWING
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)

    # -- the suite downloads its image over HTTP; the same checks on a local image follow
    @pytest.mark.xfail(reason="downloads its image over HTTP; offline here (see *_local)")
    def test_image_inputs(self, model: BaseChatModel) -> None:
        super().test_image_inputs(model)

    @pytest.mark.xfail(reason="downloads its image over HTTP; offline here (see *_local)")
    def test_image_tool_message(self, model: BaseChatModel) -> None:
        super().test_image_tool_message(model)

    def test_image_inputs_local(self, model: BaseChatModel) -> None:
        data = diagram_base64()
        prompt = {"type": "text", "text": "Give a concise description of this image."}
        openai_part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        standard = {"type": "image", "base64": data, "mime_type": "image/png"}
        text_only = model.invoke([HumanMessage([prompt])])
        for part in (openai_part, standard):
            result = model.invoke([HumanMessage([prompt, part])])
            assert isinstance(result, AIMessage)
            assert result.usage_metadata is not None
            # The image's tokens were counted in the prompt.
            assert result.usage_metadata["input_tokens"] > text_only.usage_metadata["input_tokens"]

    def test_image_tool_message_local(self, model: BaseChatModel) -> None:
        data = diagram_base64()
        openai_part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        standard = {"type": "image", "base64": data, "mime_type": "image/png"}

        def random_image() -> str:
            """Return a random image."""
            return ""

        for part in (openai_part, standard):
            messages = [
                HumanMessage(
                    "get a random diagram using the tool and give it a concise description"
                ),
                AIMessage(
                    [],
                    tool_calls=[
                        {"type": "tool_call", "id": "1", "name": "random_image", "args": {}}
                    ],
                ),
                ToolMessage(content=[part], tool_call_id="1", name="random_image"),
            ]
            result = model.bind_tools([random_image]).invoke(messages)
            assert isinstance(result, AIMessage)
            assert result.usage_metadata is not None
            assert result.usage_metadata["input_tokens"] > 20
