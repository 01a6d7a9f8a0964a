"""The GRPO rollout environment: TRL's ``environment_factory`` over the sandboxed kernel.

TRL builds one environment per rollout (and reuses instances across batches, calling
``reset`` before each rollout). Its public methods become the model's tools; here there is
exactly one, ``code_image_tool``, whose schema is the protocol profile's. A call runs through
the loop's one executor (:class:`~langchain_codevision.loop.executor.ToolExecutor`), in a
kernel lent by :class:`~langchain_codevision.loop.kernels.EpisodeKernels` from a
:class:`~langchain_codevision.kernel.KernelPool`, so the reply is the profile's exact text
and the produced image goes back into the conversation as a PIL image.

The kernel is borrowed on the rollout's first tool call and returned when the rollout is
scored (:class:`~langchain_codevision.training.grpo.CodeVisionReward` calls
``_release``), at the next ``reset``, and by :meth:`EnvironmentFactory.close` (which
:func:`~langchain_codevision.training.grpo.train_grpo` calls in a ``finally``), so a failed
step never leaks one. Nothing but the tool is public: TRL would expose any other public
method (``close`` included) to the model as a tool.

Example:
    >>> factory = EnvironmentFactory(profile="release")  # doctest: +SKIP
    >>> env = factory()
    >>> env.reset(images=[page], prompt=[...])
    >>> env.code_image_tool("result = image.rotate(90, expand=True)", "rotate", 0)
    [{'type': 'image', 'image': <PIL.Image.Image ...>}, {'type': 'text', 'text': 'Here is ...'}]
    >>> factory.close()
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

from PIL import Image

from langchain_codevision.images import PixelBudget, image_from_block, load_image, trajectory_image
from langchain_codevision.kernel import KernelPool, KernelStartError
from langchain_codevision.loop.executor import ToolExecutor
from langchain_codevision.loop.kernels import EpisodeKernels
from langchain_codevision.protocol import TOOL_NAME, ProtocolProfile, get_profile, make_failure

__all__ = ["CodeVisionEnvironment", "EnvironmentFactory", "environment_factory", "tool_docstring"]

_START_ATTEMPTS = 2
"""Kernel starts tried per call (a jail can fail to come up under load; no code ran yet)."""


def tool_docstring(profile: ProtocolProfile) -> str:
    """A Google docstring whose parsed JSON schema is the profile's tool schema.

    ``transformers.utils.get_json_schema`` (which TRL uses to render an environment's tools)
    joins the lines of an argument's description with spaces, so newlines inside the
    profile's descriptions become spaces; everything else (name, order, types, required)
    is the profile's.
    """
    function = profile.schema()["function"]
    properties = function["parameters"]["properties"]
    lines = [_one_line(function.get("description", "")), "", "Args:"]
    for name in ("code", "description", "image_index"):
        lines.append(f"    {name}: {_one_line(properties[name].get('description', name))}")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n+\s*", " ", text.strip())


class CodeVisionEnvironment:
    """One rollout: the row's images, its trajectory so far, a kernel lent on first use.

    Args:
        executor: The loop's executor (profile, limits, pixel budget).
        kernels: Lends and takes back kernels (shared by all environments of a run).
        max_calls: Tool calls after which the rollout counts as having hit the turn limit.
    """

    def __init__(self, executor: ToolExecutor, kernels: EpisodeKernels, max_calls: int) -> None:
        self._executor = executor
        self._kernels = kernels
        self._max_calls = max_calls
        self._episode: str | None = None
        self._images: list[Any] = []
        self._steps: list[dict[str, Any]] = []
        self.row: dict[str, Any] = {}
        self.calls = 0

    # TRL calls reset(**row) before each rollout; None leaves the prompt unchanged.
    def reset(self, **row: Any) -> None:
        """Start a rollout on ``row`` (its ``images`` or ``image``); the old kernel goes back."""
        self._release()
        sources = row.get("images")
        if sources is None and row.get("image") is not None:
            sources = [row["image"]]
        pil = [_as_pil(source) for source in sources or []]
        self._episode = uuid.uuid4().hex
        self._images = [trajectory_image(image, index) for index, image in enumerate(pil)]
        self._steps = []
        self.row = row
        self.calls = 0
        self._kernels.remember(self._episode, dict(enumerate(pil)))

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The executor's step record of each call (code, ok, error, duration, ...)."""
        return list(self._steps)

    @property
    def at_turn_limit(self) -> bool:
        """Whether the rollout used every tool call its turn limit allows."""
        return self.calls >= self._max_calls

    @property
    def holds_kernel(self) -> bool:
        """Whether a kernel is lent to this rollout right now."""
        return self._episode is not None and self._kernels.holds(self._episode)

    # No return annotation: transformers would add it to the rendered tool schema.
    def code_image_tool(self, code: str, description: str, image_index: int):
        """Replaced per profile by :func:`tool_docstring` (see :class:`EnvironmentFactory`)."""
        self.calls += 1
        if self._episode is None:
            self.reset()
        episode = self._episode
        pending = {
            "calls": [
                {
                    "name": TOOL_NAME,
                    "arguments": {
                        "code": code,
                        "description": description,
                        "image_index": image_index,
                    },
                    "id": None,
                    "notes": [],
                }
            ],
            "failures": [],
        }
        state = {"images": self._images, "steps": self._steps, "turns": self.calls}
        work = None
        for attempt in range(_START_ATTEMPTS):
            try:
                work = self._executor.run(
                    state, pending, lambda: self._kernels.aget(episode, self._images)
                )
                break
            except KernelStartError as exc:  # no code ran: a fresh jail may come up
                error: Exception = exc
                if attempt + 1 < _START_ATTEMPTS:
                    continue
            except Exception as exc:  # the kernel died or could not be lent
                error = exc
            failure = make_failure(type(error).__name__, str(error), "execution")
            return [{"type": "text", "text": self._executor.failure_text(failure, self._images)}]
        assert work is not None
        self._images, self._steps = work.images, work.steps
        if work.failures:
            text = self._executor.failure_text(work.failures[0], self._images)
            return [{"type": "text", "text": text}]
        blocks, _ = work.replies[0]
        return [_part(block) for block in blocks]

    def _release(self) -> None:
        """Give the rollout's kernel back (idempotent)."""
        if self._episode is not None:
            self._kernels.release(self._episode)


def _as_pil(source: Any) -> Image.Image:
    if isinstance(source, dict):  # a datasets Image struct
        source = source.get("bytes") or source.get("path")
    return load_image(source)


def _part(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "image":
        return {"type": "image", "image": image_from_block(block)}
    return {"type": "text", "text": block.get("text", "")}


class _Kernels(EpisodeKernels):
    """Episode lending that can say whether an episode holds a kernel."""

    def holds(self, episode_id: str) -> bool:
        with self._lock:
            return episode_id in self._lent


class EnvironmentFactory:
    """Builds the environments of one training run; pass it as ``environment_factory``.

    Args:
        profile: The protocol profile (tool schema, reply texts, limits, pixel budget).
        pool: Kernel pool (default: one of ``pool_size`` warm kernels, at most
            ``max_kernels`` alive, closed by :meth:`close`).
        max_turns: Assistant turns per rollout (default: the profile's); the rollout may run
            ``max_turns - 1`` tool calls, as a call in the last turn is not run.
        code_timeout: Seconds per tool call (default: the kernel's limit).
        pool_size: Warm kernels of the default pool.
        max_kernels: Most kernels alive at once in the default pool: at least the number of
            rollouts of one generation batch, as each holds its kernel until it is scored.

    Attributes:
        instances: Every environment built so far (TRL reuses them across batches).
    """

    def __init__(
        self,
        profile: str | ProtocolProfile = "release",
        *,
        pool: KernelPool | None = None,
        max_turns: int | None = None,
        code_timeout: float | None = None,
        pool_size: int = 2,
        max_kernels: int | None = None,
    ) -> None:
        self.profile = get_profile(profile)
        self.max_turns = max_turns or self.profile.max_turns
        self._own_pool = pool is None
        if pool is None:
            kwargs: dict[str, Any] = {"max_size": max_kernels} if max_kernels else {}
            if self.profile.preamble:
                kwargs["preamble"] = self.profile.preamble
            pool = KernelPool(size=pool_size, **kwargs)
        self.pool = pool
        self.kernels = _Kernels(pool, preamble=self.profile.preamble)
        budget = None
        if self.profile.min_pixels is not None or self.profile.max_pixels is not None:
            budget = PixelBudget(self.profile.min_pixels or 1, self.profile.max_pixels or 10**12)
        self.executor = ToolExecutor(
            profile=self.profile,
            max_code_chars=self.profile.max_code_chars,
            max_aspect_ratio=self.profile.max_aspect_ratio,
            timeout=code_timeout,
            budget=budget,
        )
        self.environment_class = _environment_class(self.profile)
        self.instances: list[CodeVisionEnvironment] = []
        self._lock = threading.Lock()

    @property
    def max_calls(self) -> int:
        """Tool calls a rollout may run (one per assistant turn but the last)."""
        return max(self.max_turns - 1, 0)

    def __call__(self) -> CodeVisionEnvironment:
        """A new environment (TRL calls this once per concurrent rollout)."""
        env = self.environment_class(self.executor, self.kernels, self.max_calls)
        with self._lock:
            self.instances.append(env)
        return env

    def lent(self) -> int:
        """Kernels currently lent to rollouts."""
        return len(self.kernels)

    def release_all(self) -> None:
        """Take every rollout's kernel back (after a failed step, at the end of a run)."""
        for env in list(self.instances):
            env._release()

    def close(self) -> None:
        """:meth:`release_all`, then close the pool if this factory made it."""
        self.release_all()
        if self._own_pool:
            self.pool.close()

    def __enter__(self) -> EnvironmentFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CLASSES: dict[str, type[CodeVisionEnvironment]] = {}


def _environment_class(profile: ProtocolProfile) -> type[CodeVisionEnvironment]:
    """A subclass whose ``code_image_tool`` documents ``profile``'s schema (cached)."""
    doc = tool_docstring(profile)
    cls = _CLASSES.get(doc)
    if cls is not None:
        return cls
    base = CodeVisionEnvironment.code_image_tool

    def code_image_tool(self, code: str, description: str, image_index: int):
        return base(self, code, description, image_index)

    code_image_tool.__doc__ = doc
    code_image_tool.__name__ = code_image_tool.__qualname__ = TOOL_NAME
    cls = type(
        "CodeVisionEnvironment",
        (CodeVisionEnvironment,),
        {"code_image_tool": code_image_tool, "__doc__": CodeVisionEnvironment.__doc__},
    )
    _CLASSES[doc] = cls
    return cls


def environment_factory(
    profile: str | ProtocolProfile = "release", **kwargs: Any
) -> EnvironmentFactory:
    """An :class:`EnvironmentFactory` (see its arguments)."""
    return EnvironmentFactory(profile, **kwargs)
