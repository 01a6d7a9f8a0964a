"""The CodeVision loop on LangGraph: model -> execute -> reflect -> model.

* :func:`create_codevision_graph` (:mod:`.graph`) builds the compiled graph.
* :mod:`.nodes`: the node functions; :mod:`.state`: state, input/output schemas and the
  typed routing :data:`~.state.Decision`.
* :class:`ToolExecutor` (:mod:`.executor`): the one executor (validate -> run -> fold),
  shared by the graph and the LangChain tools.
* :class:`EpisodeKernels` (:mod:`.kernels`): one borrowed kernel per episode.
* :mod:`.messages`: opening turn, tool replies, the model's view;
  :mod:`.checkpointing`: checkpointers that store image inputs.
"""

from .checkpointing import ImageAwareSerializer, image_aware
from .executor import ExecutionWork, PlannedCall, ToolExecutor
from .graph import create_codevision_graph, resolve_dialect
from .kernels import EpisodeKernels, default_pool
from .nodes import CodeVisionNodes
from .state import (
    CodeVisionInput,
    CodeVisionOutput,
    CodeVisionState,
    Decision,
    ExecuteDecision,
    FinishDecision,
    LimitDecision,
    PendingCall,
    ReflectDecision,
    Step,
)

__all__ = [
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
