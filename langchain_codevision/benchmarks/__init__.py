"""Benchmarks that ship with the package (``codevision bench``).

* :mod:`.peers`: this package's kernel step beside other ways of running model code (the
  in-process floor, smolagents, langchain-experimental, a CodeAct-style exec node, a raw
  jupyter_client kernel), one adapter each behind :class:`~.peers.Executor`.
* :mod:`.workloads`: the image workloads and their expected pixels.
* :mod:`.suite`: runs everything and collects one result dict.
* :mod:`.report`: JSON, markdown and a plot of a result.
* :mod:`.footprint`: what kernels leave on the host (processes, folders, cgroups).
* :mod:`.cli`: the ``bench`` sub-command.

Imported lazily: nothing here loads until used.
"""

__all__ = ["cli", "footprint", "peers", "report", "suite", "workloads"]
