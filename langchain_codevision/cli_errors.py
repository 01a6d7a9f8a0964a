"""Exit codes of the ``codevision`` command, and one plain line for every failure.

A mistake a user can fix (a missing file, a truncated image, an unknown model spec, a model
server that is not running) is reported as one line on stderr,
``codevision: error: <cause>; <what to do>``, naming the path, URL or spec concerned, and the
command exits with the code of :class:`ExitCode` for its kind. ``--debug`` shows the full
traceback instead.

Example:
    >>> code, line = explain(FileNotFoundError(2, "No such file or directory", "data.jsonl"))
    >>> int(code), line
    (3, 'No such file or directory: data.jsonl; check the path')
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import Any

__all__ = [
    "EXIT_CODES_HELP",
    "CLIError",
    "ExitCode",
    "explain",
    "is_model_error",
    "model_error_line",
    "one_line",
]


class ExitCode(IntEnum):
    """What the exit status of ``codevision`` means."""

    OK = 0
    """The command ran (for ``demo``: even when some answers were wrong)."""
    FAILED = 1
    """No answer was found, some items failed, or an unexpected error."""
    USAGE = 2
    """Wrong arguments (unknown option, missing value, bad choice)."""
    INPUT = 3
    """An input file or folder is missing, unreadable or corrupt (images, data, configs)."""
    MODEL = 4
    """The model cannot be used: unknown spec, missing extra, checkpoint or server."""
    KERNEL = 5
    """The sandboxed kernel could not start or could not be isolated."""
    INTERRUPTED = 130
    """Stopped with Ctrl-C."""


EXIT_CODES_HELP = """\
exit status:
  0    the command ran (demo: even when some answers were wrong)
  1    no answer was found, some items failed, or an unexpected error
  2    wrong arguments
  3    input problem: a file or folder is missing, unreadable or corrupt
  4    model problem: unknown model spec, missing extra, checkpoint or server unreachable
  5    sandbox problem: the jailed Jupyter kernel could not start
  130  interrupted (Ctrl-C)
Errors are one line on stderr; add --debug for the full traceback."""
"""The exit-code table shown in ``codevision --help``."""


class CLIError(Exception):
    """A failure already phrased for the user, with the exit code it maps to."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def one_line(text: object) -> str:
    """``text`` on a single line (newlines and runs of spaces folded)."""
    return " ".join(str(text).split())


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _request_url(exc: BaseException) -> str | None:
    """The URL of the request behind an openai/httpx error, if it carries one."""
    current: BaseException | None = exc
    while current is not None:
        request = getattr(current, "request", None)
        url = getattr(request, "url", None)
        if url is not None:
            return str(url)
        current = current.__cause__
    return None


def is_model_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a model request (LangChain, openai or httpx errors)."""
    from langchain_core.exceptions import ModelError

    if isinstance(exc, ModelError):
        return True
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return False
    if isinstance(exc, openai.OpenAIError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, httpx.HTTPError)


def model_error_line(exc: BaseException, base_url: str | None = None) -> str:
    """One line for a failed model request: what went wrong, where, and what to do."""
    where = base_url or _request_url(exc) or "the model server"
    status = getattr(exc, "status_code", None)
    cause = one_line(_root_cause(exc)) or type(exc).__name__
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"APIConnectionError", "ModelConnectionError", "ConnectError", "TransportError"}:
        timeout = names & {"APITimeoutError", "ModelTimeoutError", "TimeoutException"}
        what = "timed out" if timeout else f"is unreachable ({cause})"
        return (
            f"the model server at {where} {what}; start the server (e.g. `vllm serve MODEL`) "
            "or pass the right --base-url"
        )
    if status in (401, 403) or names & {"AuthenticationError", "ModelAuthenticationError"}:
        return (
            f"the model server at {where} refused the credentials ({cause}); "
            "set OPENAI_API_KEY to a valid key"
        )
    if status == 404 or names & {"NotFoundError", "ModelNotFoundError"}:
        return (
            f"the model server at {where} does not know this model ({cause}); "
            "check the name after 'openai:' (GET /v1/models lists what it serves)"
        )
    if status == 429 or names & {"RateLimitError", "ModelRateLimitError"}:
        return f"the model server at {where} is rate limiting ({cause}); wait and retry"
    if status is not None:
        return f"the model server at {where} answered HTTP {status} ({cause}); check the server"
    return f"the model failed: {cause}; check the model spec, --base-url and the server"


class _NeverRaised(Exception):
    """Stands in for an error class whose module was never imported."""


def _loaded(module: str, name: str) -> type[BaseException]:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else _NeverRaised


def explain(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message (without the ``codevision: error:`` prefix)."""
    from langchain_codevision.images import ImageInputError

    # Only classes of modules already imported can have raised: importing the kernel or
    # model modules here would add seconds before a one-line error.
    ModelSpecError = _loaded("langchain_codevision.model_spec", "ModelSpecError")
    IsolationError = _loaded("langchain_codevision.kernel.sandbox", "IsolationError")
    KernelStartError = _loaded("langchain_codevision.kernel.session", "KernelStartError")

    if isinstance(exc, CLIError):
        return exc.code, one_line(exc.message)
    if isinstance(exc, ImageInputError):
        return ExitCode.INPUT, (
            f"{one_line(exc)}; pass a readable PNG, JPEG or WebP file, or an http(s) or data URL"
        )
    if isinstance(exc, ModelSpecError):
        return ExitCode.MODEL, one_line(exc)
    if isinstance(exc, (KernelStartError, IsolationError)):
        return ExitCode.KERNEL, (
            f"the sandboxed kernel could not start ({one_line(exc)}); install bubblewrap "
            "(scripts/install-system-deps.sh) or allow user namespaces, then retry"
        )
    if is_model_error(exc):
        return ExitCode.MODEL, model_error_line(exc)
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        reason = exc.strerror or type(exc).__name__
        return ExitCode.INPUT, f"{reason}: {exc.filename}; check the path"
    if isinstance(exc, FileNotFoundError):
        return ExitCode.INPUT, f"{one_line(exc)}; check the path"
    data_errors = _data_error_types()
    if data_errors and isinstance(exc, data_errors):
        return ExitCode.INPUT, f"{one_line(exc)}; check the input file"
    if isinstance(exc, ImportError):
        return ExitCode.FAILED, f"{one_line(exc)}; install the missing package"
    return ExitCode.FAILED, (
        f"{type(exc).__name__}: {one_line(exc)}; rerun with --debug to see where it happened"
    )


def _data_error_types() -> tuple[type[BaseException], ...]:
    found: list[Any] = []
    try:
        from langchain_codevision.data.trajectory import ExportError

        found.append(ExportError)
    except ImportError:  # pragma: no cover - part of the package
        pass
    try:
        from langchain_codevision.data._rows import RecordError

        found.append(RecordError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)
