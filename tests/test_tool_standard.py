"""The langchain-tests standard suites for both tools."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from PIL import Image, ImageDraw

from langchain_codevision import CodeVisionTool, ImageCodeTool
from tests.scripted_model import ScriptedChatModel, text_call

_FOLDER = tempfile.mkdtemp(prefix="tool-standard-")
atexit.register(shutil.rmtree, _FOLDER, True)
_IMAGE = Path(_FOLDER) / "page.png"
_page = Image.new("RGB", (200, 120), "white")
ImageDraw.Draw(_page).text((10, 10), "TOTAL 17", fill="black")
_page.rotate(180).save(_IMAGE)


class ImageCodeToolParams:
    @property
    def tool_constructor(self) -> type[ImageCodeTool]:
        return ImageCodeTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"images": [str(_IMAGE)]}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"code": "result = image.rotate(180)", "description": "upright", "image_index": 0}


class TestImageCodeToolUnit(ImageCodeToolParams, ToolsUnitTests):
    pass


class TestImageCodeToolIntegration(ImageCodeToolParams, ToolsIntegrationTests):
    pass


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        replies=[text_call("result = image.rotate(180)"), "<answer>TOTAL 17</answer>"],
        dialect="text",
    )


class CodeVisionToolParams:
    @property
    def tool_constructor(self) -> type[CodeVisionTool]:
        return CodeVisionTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"model": _model()}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"image": str(_IMAGE), "question": "What is the total?"}


class TestCodeVisionToolUnit(CodeVisionToolParams, ToolsUnitTests):
    pass


class TestCodeVisionToolIntegration(CodeVisionToolParams, ToolsIntegrationTests):
    pass
