"""One adapter per code executor, behind one small interface, for the peer benchmark.

Each :class:`Executor` runs a workload's steps the way that executor really works, and
reports what the model would get: an image block (for executors that send images) or only
text. The rows, in report order:

* ``floor``: in-process ``exec`` in a fresh namespace per call, the result PNG-encoded for
  the model, as the CodeVision release does it (no isolation at all);
* ``codevision_jailed`` / ``codevision_plain``: this package's kernel step (jailed, and with
  ``isolation="off"``), the result encoded as the graph encodes it for the model;
* ``smolagents``: smolagents' ``LocalPythonExecutor`` (an AST interpreter with an import
  allow-list, in this process); the model sees its logs and the last value as text;
* ``langchain_experimental``: ``PythonREPL.run`` (``exec`` in this process); printed text only;
* ``codeact_node``: a minimal CodeAct-style exec node (``exec`` in one persistent dict
  namespace, stdout captured), the pattern of langgraph-codeact; printed text only;
* ``jupyter_raw``: a plain ``jupyter_client`` kernel (a separate process, no sandbox); the
  result comes back through ``display()`` as PNG.

Executors whose package is missing say so in :attr:`Executor.missing` and are skipped.
"""

from __future__ import annotations

import base64
import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from langchain_codevision.images import PixelBudget, to_image_block

from .workloads import Step

__all__ = [
    "EXECUTORS",
    "Executor",
    "InProcessFloor",
    "StepOutput",
    "codeact_eval",
    "make_executor",
]

_NAMES = {
    "Image": Image,
    "ImageEnhance": ImageEnhance,
    "ImageFilter": ImageFilter,
    "ImageOps": ImageOps,
}


@dataclass
class StepOutput:
    """What one step produced: the output pixels (for checking) and what the model gets."""

    image: Image.Image | None
    image_bytes: int = 0
    text: str = ""


class Executor:
    """The interface: ``open`` once, ``begin`` an episode, run steps, ``close``.

    Attributes:
        name: Row key.
        title: Row label.
        returns_images: Whether images made by the code reach the model.
        isolation: What separates the code from the host.
        missing: Why the executor cannot run here (``""``: it can).
    """

    name = ""
    title = ""
    returns_images = False
    isolation = "none (runs in the host process)"
    missing = ""

    def open(self) -> None:
        """One-time setup (imports, kernel start)."""

    def begin(self, image: Image.Image) -> None:
        """Start an episode on ``image`` (fresh state)."""
        raise NotImplementedError

    def step(self, step: Step) -> StepOutput:
        """Run one step; in a chained step ``image`` is the previous ``result``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``open`` took."""


class InProcessFloor(Executor):
    """``exec`` in this process, a fresh namespace per call, PNG for the model (the release)."""

    name, title, returns_images = "floor", "in-process exec (release, floor)", True

    def begin(self, image: Image.Image) -> None:
        """Keep ``image`` as the episode's input."""
        self.input = self.last = image

    def step(self, step: Step) -> StepOutput:
        """``exec`` on a copy of the image in a fresh namespace; PNG-encode the result."""
        source = self.last if step.chained else self.input
        names = {**_NAMES, "image": source.copy(), "img": source.copy()}
        exec(step.code, names)
        result = names["result"]
        self.last = result
        block = to_image_block(result)
        return StepOutput(result, len(block["base64"]))


class CodeVisionKernel(Executor):
    """This package's kernel: ``execute`` on the bound image; encoded as the graph does."""

    returns_images = True

    def __init__(self, jailed: bool = True, **session_kwargs: Any) -> None:
        self.jailed = jailed
        self.name = "codevision_jailed" if jailed else "codevision_plain"
        self.title = "codevision kernel, jailed" if jailed else "codevision kernel, plain"
        self.session_kwargs = session_kwargs if jailed else {**session_kwargs, "isolation": "off"}

    def open(self) -> None:
        from langchain_codevision.kernel import KernelSession
        from langchain_codevision.protocol import get_profile

        profile = get_profile("default")
        self.budget = PixelBudget(profile.min_pixels or 1, profile.max_pixels or 10**12)
        self.session = KernelSession(**self.session_kwargs).start()
        self.isolation = self.session.isolation if self.jailed else "separate process only"

    def begin(self, image: Image.Image) -> None:
        self.session.put_image(0, image)
        self.last = 0

    def step(self, step: Step) -> StepOutput:
        from langchain_codevision.loop.messages import encode_step_image

        source = self.last if step.chained else 0
        target = 2 if source == 1 else 1  # two slots: repeats never pile images up
        out = self.session.execute(step.code, image=source, collect=("result",), register_as=target)
        if out.error is not None or not out.result_images:
            raise RuntimeError(f"the kernel step failed: {out.error}")
        result = out.result_images[0].image
        block, _ = encode_step_image(result, target, self.budget, "png", origin="tool")
        self.last = target
        return StepOutput(result, len(block["base64"]), out.stdout)

    def close(self) -> None:
        self.session.close()


class SmolagentsLocal(Executor):
    """smolagents ``LocalPythonExecutor``: its observation is text (logs + last value)."""

    name, title = "smolagents", "smolagents LocalPythonExecutor"
    isolation = "AST interpreter with an import allow-list, in the host process"

    def __init__(self) -> None:
        try:
            import smolagents  # noqa: F401
        except ImportError:
            self.missing = "pip install smolagents"

    def begin(self, image: Image.Image) -> None:
        from smolagents.local_python_executor import LocalPythonExecutor

        self.executor = LocalPythonExecutor(additional_authorized_imports=["PIL", "PIL.*"])
        self.executor.send_tools({})
        self.executor.send_variables({**_NAMES, "image": image, "img": image})
        self.input = image

    def step(self, step: Step) -> StepOutput:
        prefix = "image = result\n" if step.chained else "image = img\n"
        out = self.executor(prefix + step.code + "\nresult")
        text = f"{out.logs}\nLast output from code snippet:\n{out.output}"
        return StepOutput(out.output, 0, text)


class LangchainPythonREPL(Executor):
    """langchain-experimental ``PythonREPL``: returns what the code printed."""

    name, title = "langchain_experimental", "langchain-experimental PythonREPL"

    def __init__(self) -> None:
        try:
            import langchain_experimental.utilities  # noqa: F401
        except ImportError:
            self.missing = "pip install langchain-experimental"

    def begin(self, image: Image.Image) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_experimental.utilities import PythonREPL

            self.repl = PythonREPL(_globals={**_NAMES, "img": image}, _locals={})
        self.repl.locals["image"] = image

    def step(self, step: Step) -> StepOutput:
        prefix = "image = result\n" if step.chained else "image = img\n"
        with contextlib.redirect_stderr(io.StringIO()):  # its one-time safety warning
            text = self.repl.run(prefix + step.code + "\nprint(result.size)")
        return StepOutput(self.repl.locals.get("result"), 0, text)


def codeact_eval(code: str, namespace: dict[str, Any]) -> str:
    """A CodeAct-style exec node: run ``code`` in the persistent ``namespace``, return stdout."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(code, namespace)
    except Exception as exc:
        return f"{buffer.getvalue()}Error: {type(exc).__name__}: {exc}"
    return buffer.getvalue()


class CodeActNode(Executor):
    """The langgraph-codeact pattern: ``exec`` in one dict kept across calls; text only."""

    name, title = "codeact_node", "CodeAct-style exec node"

    def begin(self, image: Image.Image) -> None:
        self.namespace: dict[str, Any] = {**_NAMES, "img": image}

    def step(self, step: Step) -> StepOutput:
        prefix = "image = result\n" if step.chained else "image = img\n"
        text = codeact_eval(prefix + step.code + "\nprint(result.size)", self.namespace)
        return StepOutput(self.namespace.get("result"), 0, text)


class JupyterRaw(Executor):
    """A plain ``jupyter_client`` kernel; the result is shown with ``display()`` (PNG)."""

    name, title, returns_images = "jupyter_raw", "raw jupyter_client kernel", True
    isolation = "separate process, no sandbox"

    def open(self) -> None:
        from jupyter_client import KernelManager

        self.folder = tempfile.TemporaryDirectory(prefix="bench-jupyter-")
        self.manager = KernelManager(transport="ipc", ip=str(Path(self.folder.name) / "ipc"))
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self._run("from PIL import Image, ImageEnhance, ImageFilter, ImageOps")

    def _run(self, code: str) -> tuple[str, str | None]:
        found: dict[str, Any] = {"text": "", "png": None}

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                found["text"] += content["text"]
            elif kind in ("display_data", "execute_result") and "image/png" in content["data"]:
                found["png"] = content["data"]["image/png"]
            elif kind == "error":
                found["text"] += "\n".join(content["traceback"])

        reply = self.client.execute_interactive(code, timeout=60, output_hook=hook)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel step failed: {found['text']}")
        return found["text"], found["png"]

    def begin(self, image: Image.Image) -> None:
        path = Path(self.folder.name) / "input.png"
        image.save(path)
        self._run(f"img = Image.open({str(path)!r}).convert('RGB')")

    def step(self, step: Step) -> StepOutput:
        prefix = "image = result\n" if step.chained else "image = img\n"
        text, png = self._run(prefix + step.code + "\ndisplay(result)")
        if png is None:
            raise RuntimeError("the kernel displayed no image")
        decoded = Image.open(io.BytesIO(base64.b64decode(png)))
        return StepOutput(decoded, len(png), text)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        self.folder.cleanup()


EXECUTORS = (
    "floor",
    "codevision_jailed",
    "codevision_plain",
    "smolagents",
    "langchain_experimental",
    "codeact_node",
    "jupyter_raw",
)
"""Every executor, in report order."""


def make_executor(name: str) -> Executor:
    """A new executor for ``name`` (one of :data:`EXECUTORS`)."""
    makers = {
        "floor": InProcessFloor,
        "codevision_jailed": lambda: CodeVisionKernel(jailed=True),
        "codevision_plain": lambda: CodeVisionKernel(jailed=False),
        "smolagents": SmolagentsLocal,
        "langchain_experimental": LangchainPythonREPL,
        "codeact_node": CodeActNode,
        "jupyter_raw": JupyterRaw,
    }
    if name not in makers:
        raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    return makers[name]()
