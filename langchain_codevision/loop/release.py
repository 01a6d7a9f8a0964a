"""Give an episode's kernel back when its graph run ends early, however it ends.

Each node releases the episode's kernel when the node itself fails or is cancelled (see
``_guarded`` in :mod:`.graph`). A run can also end *between* nodes: cancelled while
LangGraph commits a step or a checkpointer writes, or stopped by ``KeyboardInterrupt``. No
node is running then, so nothing would release the kernel until the idle sweep of
:class:`~.kernels.EpisodeKernels` (15 minutes). :class:`EpisodeReleaser` closes that gap
from LangGraph's own run events: the graph run reports its error (a cancellation too)
through ``on_chain_error``, and the handler knows which episode the run holds: the
``prepare`` node's output names it, and so does the input of every later node (which also
covers a run resumed from a checkpoint, where ``prepare`` does not run again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_codevision.kernel._loop import submit

from .kernels import EpisodeKernels

__all__ = ["EpisodeReleaser"]

logger = logging.getLogger(__name__)

PREPARE_NODE = "prepare"


class EpisodeReleaser(BaseCallbackHandler):
    """A callback handler on the graph's runs: an ended run's episode gives its kernel back.

    Args:
        kernels: The graph's episode-to-kernel map.
        nodes: The graph's node names (their runs' parent is the graph run).
    """

    run_inline = True  # called where the event happens: no thread per event
    raise_error = False
    ignore_llm = True
    ignore_chat_model = True
    ignore_retriever = True
    ignore_agent = True
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self, kernels: EpisodeKernels, nodes: Iterable[str]) -> None:
        self.kernels = kernels
        self.nodes = frozenset(nodes)
        self._prepares: set[UUID] = set()
        self._episodes: dict[UUID, str] = {}  # graph run id -> the episode it opened
        self._lock = threading.Lock()

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the episode a node's input names, or a ``prepare`` run (its output will)."""
        name = kwargs.get("name")
        if name not in self.nodes or parent_run_id is None:
            return
        episode = inputs.get("episode_id") if isinstance(inputs, dict) else None
        with self._lock:
            if name == PREPARE_NODE:
                self._prepares.add(run_id)
            elif isinstance(episode, str):
                self._episodes[parent_run_id] = episode

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Map a graph run to the episode its ``prepare`` opened; forget a finished run."""
        with self._lock:
            self._episodes.pop(run_id, None)  # a graph run that finished: its nodes released
            if run_id not in self._prepares:
                return
            self._prepares.discard(run_id)
            episode = outputs.get("episode_id") if isinstance(outputs, dict) else None
            if isinstance(episode, str) and parent_run_id is not None:
                self._episodes[parent_run_id] = episode

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A graph run that ended in an error or a cancellation gives its kernel back."""
        with self._lock:
            self._prepares.discard(run_id)
            episode = self._episodes.pop(run_id, None)
        if episode is not None:
            future = submit(self.kernels.arelease(episode))  # never blocks the caller's loop
            future.add_done_callback(_log_failure)

    def __len__(self) -> int:
        """Graph runs in flight whose episode this handler knows."""
        return len(self._episodes)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("could not give an ended episode's kernel back: %s", future.exception())
