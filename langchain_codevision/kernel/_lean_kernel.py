"""The lean kernel: the Jupyter messaging protocol over ZeroMQ, without IPython.

Run inside the jail by the launcher (``_launch.main``) in place of ipykernel; it imports
nothing from the package. It answers what the host and any Jupyter client send
(``kernel_info``, ``execute``, ``complete``, ``inspect``, ``is_complete``, ``history``,
``comm_info``, ``interrupt``, ``shutdown``) and publishes the usual IOPub messages
(``status``, ``execute_input``, ``stream``, ``display_data``, ``execute_result``,
``error``), signed with the connection file's HMAC key. A request whose metadata says
``{"codevision": {"quiet": true}}`` comes from a client that reads only what it needs:
no ``busy`` status and no ``execute_input`` are published for it, and no ``idle`` either
when it is also ``silent`` (its outputs, if any, and a non-silent request's closing
``idle`` still are). Every message a client does not read costs both ends a signature,
a parse and a wake-up.

Why not ipykernel: a kernel forked from the preloaded template started in ~0.35 s and kept
~26 MiB of private memory, almost all of it IPython's shell, its magics, a dozen threads and
two ZeroMQ contexts. This one starts in milliseconds and keeps ~3 MiB: one ZeroMQ context,
the main thread (shell, IOPub) and one thread for the control and heartbeat sockets, so an
interrupt or a heartbeat is answered while a cell runs.

Code runs like a notebook cell: the last expression is shown as ``execute_result``,
top-level ``await`` works, matplotlib figures are shown (PNG) and closed after each cell,
``display()`` (and IPython's, once imported) shows rich objects, and ``get_ipython()``
returns the :class:`Shell` (``user_ns``, ``events``, ``ast_transformers``,
``display_formatter``, ``kernel``), which is what the kernel-side runtime needs. There are
no magics and no ``!`` commands: cells are plain Python, as the CodeVision release runs them.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import builtins
import codecs
import codeop
import hashlib
import hmac
import importlib.util
import inspect
import io
import itertools
import json
import linecache
import os
import pprint
import signal
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from typing import Any

import _lean_comms
import zmq

PROTOCOL_VERSION = "5.3"
DELIMITER = b"<IDS|MSG>"
STREAM_FLUSH_CHARS = 64 * 1024
STREAM_FLUSH_S = 0.05
STREAM_IDLE_FLUSH_MS = 100
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
)
HERE = os.path.abspath(__file__)
SHOWN_NAME = "__cv_shown__"
"""Where a cell's last expression is kept until it is shown (never left in the namespace)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _to_json(value: Any) -> bytes:
    return json.dumps(value, default=str, ensure_ascii=False).encode("utf-8", "replace")


class Wire:
    """Signs, frames and parses Jupyter messages (``hmac-sha256`` or unsigned)."""

    def __init__(self, key: bytes, scheme: str = "hmac-sha256") -> None:
        self.key = key
        algorithm = scheme.split("-", 1)[-1] if scheme.startswith("hmac-") else "sha256"
        self.digest = getattr(hashlib, algorithm, hashlib.sha256)
        self.session = uuid.uuid4().hex
        self._numbers = itertools.count(1)  # next() is atomic: several threads publish

    def sign(self, parts: list[bytes]) -> bytes:
        if not self.key:
            return b""
        mac = hmac.new(self.key, digestmod=self.digest)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def header(self, msg_type: str) -> dict[str, Any]:
        return {
            "msg_id": f"{self.session}_{os.getpid()}_{next(self._numbers)}",
            "msg_type": msg_type,
            "username": "kernel",
            "session": self.session,
            "date": _now(),
            "version": PROTOCOL_VERSION,
        }

    def frames(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: dict[str, Any] | None,
        idents: list[bytes],
        metadata: dict[str, Any] | None = None,
        buffers: list[Any] | None = None,
    ) -> list[Any]:
        parts = [
            _to_json(self.header(msg_type)),
            _to_json((parent or {}).get("header", {})),
            _to_json(metadata or {}),
            _to_json(content),
        ]
        return [*idents, DELIMITER, self.sign(parts), *parts, *(buffers or ())]

    def parse(self, frames: list[bytes]) -> tuple[list[bytes], dict[str, Any]] | None:
        """``(idents, message)``, or ``None`` for a malformed or badly signed message."""
        try:
            split = frames.index(DELIMITER)
        except ValueError:
            return None
        idents, rest = frames[:split], frames[split + 1 :]
        if len(rest) < 5:
            return None
        signature, parts = rest[0], rest[1:5]
        if self.key and not hmac.compare_digest(signature, self.sign(parts)):
            return None
        try:
            header, parent, metadata, content = (json.loads(part) for part in parts)
        except ValueError:
            return None
        if not all(isinstance(part, dict) for part in (header, parent, metadata, content)):
            return None
        message = {
            "header": header,
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "msg_type": header.get("msg_type"),
            "buffers": rest[5:],
        }
        return idents, message


class Events:
    """IPython-style callbacks: ``pre_execute``, ``pre_run_cell``, ``post_execute``, ...

    And one IPython does not have: ``post_reply``, after a request has been answered (its
    reply and ``idle`` sent), for work the client need not wait for.
    """

    NAMES = ("pre_execute", "pre_run_cell", "post_execute", "post_run_cell", "post_reply")

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Any]] = {name: [] for name in self.NAMES}

    def register(self, event: str, function: Any) -> None:
        if event not in self.callbacks:
            raise KeyError(f"unknown event {event!r}; known events: {', '.join(self.NAMES)}")
        if not callable(function):
            raise TypeError(f"{function!r} is not callable")
        self.callbacks[event].append(function)

    def unregister(self, event: str, function: Any) -> None:
        self.callbacks[event].remove(function)

    def trigger(self, event: str, *args: Any) -> None:
        for function in list(self.callbacks[event]):
            try:
                function(*args)
            except Exception:
                traceback.print_exc()


class TypeFormatter:
    """Per-type functions for one MIME type (looked up along the object's MRO)."""

    def __init__(self) -> None:
        self.functions: dict[type, Any] = {}

    def for_type(self, cls: type, function: Any = None) -> Any:
        old = self.functions.get(cls)
        if function is not None:
            self.functions[cls] = function
        return old

    def lookup(self, value: Any) -> Any:
        for cls in type(value).__mro__:
            if cls in self.functions:
                return self.functions[cls]
        return None


class DisplayFormatter:
    """Turns an object into a MIME bundle: registered functions first, then ``_repr_*_``."""

    def __init__(self) -> None:
        mimes = ["text/plain", *(mime for mime, _ in REPR_METHODS)]
        self.formatters = {mime: TypeFormatter() for mime in mimes}
        self.mimebundle_formatter = TypeFormatter()

    def format(self, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        bundle = self.mimebundle_formatter.lookup(value)
        if bundle is not None:
            data = bundle(value)
            if isinstance(data, tuple):
                data = data[0]
            if isinstance(data, dict):
                data = dict(data)
                data.setdefault("text/plain", _plain(value))
                return data, {}
        data: dict[str, Any] = {}
        method = getattr(value, "_repr_mimebundle_", None)
        if callable(method) and not isinstance(value, type):
            try:
                found = method()
            except Exception:
                found = None
            if isinstance(found, tuple):
                found = found[0]
            if isinstance(found, dict):
                data.update(found)
        for mime, name in REPR_METHODS:
            if mime in data:
                continue
            function = self.formatters[mime].lookup(value)
            if function is None:
                repr_method = getattr(value, name, None)
                if not callable(repr_method) or isinstance(value, type):
                    continue
                function = lambda _value, method=repr_method: method()  # noqa: E731
            try:
                found = function(value)
            except Exception:
                continue
            if isinstance(found, tuple):
                found = found[0]
            if found is None:
                continue
            if isinstance(found, bytes):
                found = base64.b64encode(found).decode("ascii")
            data[mime] = found
        plain = self.formatters["text/plain"].lookup(value)
        data["text/plain"] = plain(value) if plain is not None else _plain(value)
        return data, {}


def _plain(value: Any) -> str:
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        try:
            return pprint.pformat(value, width=79, sort_dicts=False)
        except Exception:
            pass
    return repr(value)


class DisplayHook:
    """Keeps ``_`` (the last shown value), as IPython's display hook does."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def flush(self) -> None:
        self.shell.user_ns.pop("_", None)


class DisplayPublisher:
    """Sends ``display_data`` (``publish``) and ``clear_output`` to IOPub."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        transient: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        self.kernel.publish("display_data", content)

    def clear_output(self, wait: bool = False) -> None:
        self.kernel.publish("clear_output", {"wait": bool(wait)})


class OutStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr``: text goes to IOPub as ``stream`` messages, batched."""

    def __init__(self, kernel: Kernel, name: str) -> None:
        super().__init__()
        self.kernel = kernel
        self.name = name
        self._parts: list[str] = []
        self._chars = 0
        self._since = 0.0
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        with self._lock:
            if not self._parts:
                self._since = time.monotonic()
            self._parts.append(text)
            self._chars += len(text)
            due = self._chars >= STREAM_FLUSH_CHARS or (
                time.monotonic() - self._since >= STREAM_FLUSH_S
            )
        if due:
            self.flush()
        return len(text)

    def flush_if_due(self) -> None:
        """Flush text that has waited :data:`STREAM_FLUSH_S` or longer."""
        if self._parts and time.monotonic() - self._since >= STREAM_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._parts:
                return
            text = "".join(self._parts)
            self._parts, self._chars = [], 0
        self.kernel.publish("stream", {"name": self.name, "text": text})


class FdCapture:
    """What is written to a file descriptor (1 or 2: C code, child processes) goes to a stream.

    The descriptor becomes a pipe; the control thread reads it as data arrives, and the main
    thread reads what is left before a cell's reply, so nothing written by the cell is lost.
    """

    def __init__(self, fd: int, stream: OutStream) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.dup2(write_end, fd)
        os.close(write_end)
        self.fd = read_end
        self.stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()

    def drain(self) -> None:
        """Move everything the pipe holds now into the stream."""
        with self._lock:
            while True:
                try:
                    data = os.read(self.fd, 1 << 16)
                except (BlockingIOError, InterruptedError):
                    break
                if not data:
                    break
                self.stream.write(self._decoder.decode(data))


class Shell:
    """What ``get_ipython()`` returns: the namespace and the hooks around each cell."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.events = Events()
        self.ast_transformers: list[ast.NodeTransformer] = []
        self.display_formatter = DisplayFormatter()
        self.display_pub = DisplayPublisher(kernel)
        self.displayhook = DisplayHook(self)
        self.execution_count = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        module = type(sys)("__main__")
        sys.modules["__main__"] = module
        self.user_module = module
        self.user_ns: dict[str, Any] = module.__dict__
        self.user_ns.update(
            __name__="__main__",
            __builtins__=builtins,
            get_ipython=self.get_ipython,
            display=self.display,
        )

    def get_ipython(self) -> Shell:
        return self

    def show(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        transient: dict[str, Any] | None = None,
    ) -> None:
        """Publish display data after the text printed before it."""
        self.kernel.flush_streams()
        self.display_pub.publish(data, metadata, transient)

    def display(self, *values: Any, raw: bool = False, clear: bool = False, **_: Any) -> None:
        """Show each value as ``display_data`` (a dict of MIME data when ``raw``)."""
        if clear:
            self.display_pub.clear_output(wait=True)
        for value in values:
            if raw and isinstance(value, dict):
                self.show(value)
            else:
                self.show(*self.display_formatter.format(value))

    # -- running a cell ------------------------------------------------------------------
    def run_cell(self, code: str, *, silent: bool, store_history: bool) -> dict[str, Any]:
        """Run one cell; returns the ``execute_reply`` fields (status, error details)."""
        count = self.execution_count
        if store_history and not silent:
            self.execution_count += 1
        filename = f"<cell {count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.events.trigger("pre_execute")
        if not silent:
            self.events.trigger("pre_run_cell", None)
        reply: dict[str, Any] = {"status": "ok", "execution_count": count}
        try:
            self._run(code, filename, count, silent)
        except BaseException as exc:
            reply.update(self.kernel.report_error(exc, count))
        finally:
            self.events.trigger("post_execute")
            if not silent:
                self.events.trigger("post_run_cell", None)
        return reply

    def _run(self, code: str, filename: str, count: int, silent: bool) -> None:
        """Run the cell as one unit (so ``await`` anywhere in it shares one running loop)."""
        tree = parse_cell(code, filename)
        for transformer in self.ast_transformers:
            tree = transformer.visit(tree)
        body = tree.body
        shown = bool(body) and isinstance(body[-1], ast.Expr) and not code.rstrip().endswith(";")
        if shown:  # the last expression's value is kept under a name, shown afterwards
            name = ast.Name(id=SHOWN_NAME, ctx=ast.Store())
            body[-1] = ast.copy_location(ast.Assign(targets=[name], value=body[-1].value), body[-1])
        ast.fix_missing_locations(tree)
        self.user_ns.pop(SHOWN_NAME, None)
        self._eval(compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT))
        value = self.user_ns.pop(SHOWN_NAME, None)
        if shown and value is not None and not silent:
            self.user_ns["_"] = value
            self.kernel.flush_streams()
            data, metadata = self.display_formatter.format(value)
            self.kernel.publish(
                "execute_result",
                {"execution_count": count, "data": data, "metadata": metadata},
            )

    def _eval(self, code: Any) -> Any:
        self.kernel.user_running = True
        try:
            result = eval(code, self.user_ns)
            if code.co_flags & inspect.CO_COROUTINE:
                result = self._event_loop().run_until_complete(result)
            return result
        finally:
            self.kernel.user_running = False

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop top-level ``await`` runs on: one for the kernel's life, as in a notebook.

        A new loop per cell would also leave each loop's selector descriptors open.
        """
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def user_expressions(self, expressions: dict[str, Any]) -> dict[str, Any]:
        """Evaluate each expression in the user namespace (after the cell)."""
        out: dict[str, Any] = {}
        for name, source in expressions.items():
            try:
                value = self._eval(compile(str(source), "<user expression>", "eval"))
                data, metadata = self.display_formatter.format(value)
                out[name] = {"status": "ok", "data": data, "metadata": metadata}
            except BaseException as exc:
                out[name] = {
                    "status": "error",
                    "ename": type(exc).__name__,
                    "evalue": _text_of(exc),
                    "traceback": [],
                }
        return out


class Kernel:
    """The sockets, the request loop and the control thread."""

    def __init__(self, connection: dict[str, Any]) -> None:
        self.connection = connection
        self.wire = Wire(str(connection.get("key", "")).encode(), connection["signature_scheme"])
        self.context = zmq.Context(io_threads=1)
        self.parent: dict[str, Any] = {}
        self.idents: list[bytes] = []
        self.quiet = False
        self.user_running = False
        self.captures: list[FdCapture] = []
        self._iopub_lock = threading.Lock()
        self.shell_socket = self._bind(zmq.ROUTER, "shell_port")
        self.stdin_socket = self._bind(zmq.ROUTER, "stdin_port")
        self.control_socket = self._bind(zmq.ROUTER, "control_port")
        self.hb_socket = self._bind(zmq.REP, "hb_port")
        self.iopub_socket = self._bind(zmq.PUB, "iopub_port")
        self.streams = (OutStream(self, "stdout"), OutStream(self, "stderr"))
        self.comm_manager = _lean_comms.CommManager(self.publish)
        self.shell = Shell(self)

    def _bind(self, kind: int, port_name: str) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 1000)
        transport, ip = self.connection["transport"], self.connection["ip"]
        port = self.connection[port_name]
        if transport == "ipc":
            sock.bind(f"ipc://{ip}-{port}")
        else:
            sock.bind(f"tcp://{ip}:{port}")
        return sock

    # -- messages ------------------------------------------------------------------------
    def get_parent(self, channel: str = "shell") -> dict[str, Any]:
        """The request being handled (IPython's ``kernel.get_parent``)."""
        return self.parent

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        buffers: list[Any] | None = None,
    ) -> None:
        idents = [msg_type.encode()]
        frames = self.wire.frames(msg_type, content, self.parent, idents, metadata, buffers)
        with self._iopub_lock:
            self.iopub_socket.send_multipart(frames, copy=not buffers)

    def reply(
        self,
        sock: zmq.Socket,
        idents: list[bytes],
        parent: dict[str, Any],
        msg_type: str,
        content: dict[str, Any],
    ) -> None:
        sock.send_multipart(self.wire.frames(msg_type, content, parent, idents))

    def flush_streams(self) -> None:
        for capture in self.captures:
            capture.drain()
        for stream in self.streams:
            stream.flush()

    def status(self, state: str) -> None:
        self.publish("status", {"execution_state": state})

    def report_error(self, exc: BaseException, count: int) -> dict[str, Any]:
        """Publish ``error`` for an exception from a cell; the reply's error fields."""
        self.flush_streams()
        try:
            lines = format_exception(exc)
        except Exception:  # an exception that cannot even be formatted
            lines = []
        content = {"ename": type(exc).__name__, "evalue": _text_of(exc), "traceback": lines}
        self.publish("error", content)
        return {"status": "error", **content}

    # -- requests ------------------------------------------------------------------------
    def kernel_info(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "protocol_version": PROTOCOL_VERSION,
            "implementation": "codevision-lean",
            "implementation_version": "1",
            "language_info": {
                "name": "python",
                "version": ".".join(map(str, sys.version_info[:3])),
                "mimetype": "text/x-python",
                "file_extension": ".py",
                "pygments_lexer": "python3",
                "codemirror_mode": {"name": "python", "version": 3},
                "nbconvert_exporter": "python",
            },
            "banner": f"CodeVision lean kernel, Python {sys.version.split()[0]}",
            "help_links": [],
        }

    def execute(self, content: dict[str, Any]) -> dict[str, Any]:
        code = content.get("code", "")
        silent = bool(content.get("silent", False))
        store_history = bool(content.get("store_history", not silent))
        if not isinstance(code, str):
            code = str(code)
        if not silent and not self.quiet:
            self.publish(
                "execute_input", {"code": code, "execution_count": self.shell.execution_count}
            )
        reply = self.shell.run_cell(code, silent=silent, store_history=store_history)
        expressions = content.get("user_expressions") or {}
        reply["user_expressions"] = (
            self.shell.user_expressions(expressions)
            if isinstance(expressions, dict) and reply["status"] == "ok"
            else {}
        )
        reply.setdefault("payload", [])
        self.flush_streams()
        return reply

    def complete(self, content: dict[str, Any]) -> dict[str, Any]:
        code, cursor = str(content.get("code", "")), int(content.get("cursor_pos", 0) or 0)
        start = cursor
        while start > 0 and (code[start - 1].isalnum() or code[start - 1] in "_."):
            start -= 1
        token = code[start:cursor]
        matches: list[str] = []
        if "." in token:
            base, _, prefix = token.rpartition(".")
            try:
                value = eval(base, self.shell.user_ns)
                matches = [f"{base}.{n}" for n in dir(value) if n.startswith(prefix)]
            except Exception:
                matches = []
        else:
            names = set(self.shell.user_ns) | set(dir(builtins))
            matches = sorted(n for n in names if n.startswith(token))
        return {
            "status": "ok",
            "matches": matches[:200],
            "cursor_start": start,
            "cursor_end": cursor,
            "metadata": {},
        }

    def is_complete(self, content: dict[str, Any]) -> dict[str, Any]:
        code = str(content.get("code", ""))
        try:
            compiled = codeop.compile_command(code, "<input>", "exec")
        except (SyntaxError, ValueError, OverflowError):
            return {"status": "invalid"}
        if compiled is None:
            return {"status": "incomplete", "indent": "    " if code.rstrip().endswith(":") else ""}
        return {"status": "complete"}

    def handle_shell(self, idents: list[bytes], message: dict[str, Any]) -> None:
        msg_type = message["msg_type"]
        content = message["content"]
        self.parent, self.idents = message, idents
        self.quiet = _asks_quiet(message)
        if not self.quiet:
            self.status("busy")
        try:
            if msg_type in ("comm_open", "comm_msg", "comm_close"):
                self.comm_manager.handle(message)
                return
            if msg_type == "shutdown_request":
                self.shutdown(self.shell_socket, idents, message)
                return
            handler = self._shell_handlers.get(str(msg_type))
            if handler is None:
                return  # anything unknown: nothing to answer
            try:
                reply = handler(content)
            except Exception as exc:  # still answer: the client waits for a reply
                reply = {
                    "status": "error",
                    "ename": type(exc).__name__,
                    "evalue": _text_of(exc),
                    "traceback": [],
                }
            reply_type = str(msg_type).removesuffix("_request") + "_reply"
            self.reply(self.shell_socket, idents, message, reply_type, reply)
        finally:
            if not (self.quiet and isinstance(content, dict) and content.get("silent")):
                self.status("idle")
            self.shell.events.trigger("post_reply")

    @property
    def _shell_handlers(self) -> dict[str, Any]:
        return {
            "execute_request": self.execute,
            "kernel_info_request": lambda _content: self.kernel_info(),
            "complete_request": self.complete,
            "is_complete_request": self.is_complete,
            "inspect_request": lambda _content: {
                "status": "ok",
                "found": False,
                "data": {},
                "metadata": {},
            },
            "history_request": lambda _content: {"status": "ok", "history": []},
            "comm_info_request": lambda content: self.comm_manager.info(content.get("target_name")),
        }

    def handle_control(self, idents: list[bytes], message: dict[str, Any]) -> None:
        msg_type = message["msg_type"]
        sock = self.control_socket
        if msg_type == "interrupt_request":
            self.reply(sock, idents, message, "interrupt_reply", {"status": "ok"})
            os.kill(os.getpid(), signal.SIGINT)
        elif msg_type == "kernel_info_request":
            self.reply(sock, idents, message, "kernel_info_reply", self.kernel_info())
        elif msg_type == "shutdown_request":
            self.shutdown(sock, idents, message)

    def shutdown(self, sock: zmq.Socket, idents: list[bytes], message: dict[str, Any]) -> None:
        """Answer a shutdown request, then leave at once (the reply given a moment to go)."""
        restart = bool(message["content"].get("restart"))
        self.reply(sock, idents, message, "shutdown_reply", {"status": "ok", "restart": restart})
        time.sleep(0.05)
        os._exit(0)

    # -- loops ---------------------------------------------------------------------------
    def _control_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.control_socket, zmq.POLLIN)
        poller.register(self.hb_socket, zmq.POLLIN)
        for capture in self.captures:
            poller.register(capture.fd, zmq.POLLIN)
        while True:
            try:
                ready = dict(poller.poll(STREAM_IDLE_FLUSH_MS))
            except zmq.ContextTerminated:
                return
            except zmq.ZMQError:
                continue
            try:
                if self.hb_socket in ready:
                    self.hb_socket.send(self.hb_socket.recv())
                for capture in self.captures:
                    if capture.fd in ready:
                        capture.drain()
                for stream in self.streams:
                    stream.flush_if_due()  # text a thread wrote and nobody flushed
                if self.control_socket in ready:
                    parsed = self.wire.parse(self.control_socket.recv_multipart())
                    if parsed is not None:
                        self.handle_control(*parsed)
            except Exception:  # this thread must outlive whatever the cell broke
                continue

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.user_running:
            raise KeyboardInterrupt
        # Between cells an interrupt has nothing to stop: ignore it.

    def serve(self) -> None:
        """Handle shell requests until shutdown."""
        signal.signal(signal.SIGINT, self._on_sigint)
        sys.stdout, sys.stderr = self.streams
        self.captures = [FdCapture(1, self.streams[0]), FdCapture(2, self.streams[1])]
        threading.Thread(target=self._control_loop, name="control", daemon=True).start()
        builtins.input = _no_input
        _route_ipython_display(self.shell)
        sys.meta_path.append(_PrivateModules())
        _inline_figures(self.shell)
        while True:
            try:
                frames = self.shell_socket.recv_multipart()
            except zmq.ZMQError:
                continue
            parsed = self.wire.parse(frames)
            if parsed is None:
                continue
            try:
                self.handle_shell(*parsed)
            except Exception:  # the kernel serves on, whatever a cell did to its modules
                traceback.print_exc()


def _asks_quiet(message: dict[str, Any]) -> bool:
    """Whether the request's metadata asks for no ``busy``/``execute_input`` (see above)."""
    metadata = message.get("metadata")
    request = metadata.get("codevision") if isinstance(metadata, dict) else None
    return isinstance(request, dict) and request.get("quiet") is True


def parse_cell(code: str, filename: str) -> ast.Module:
    """Parse a cell as Python, with a word for IPython syntax.

    ``%matplotlib`` lines are dropped (figures are always shown); any other magic or ``!``
    command gets an error that says so. Only a line the parser rejects is looked at, so
    text inside strings is never touched.
    """
    lines = code.splitlines(keepends=True)
    for _ in range(len(lines) + 1):
        try:
            return ast.parse("".join(lines), filename=filename)
        except SyntaxError as exc:
            index = (exc.lineno or 0) - 1
            if not 0 <= index < len(lines):
                raise
            line = lines[index]
            stripped = line.lstrip()
            if stripped.startswith("%matplotlib"):
                lines[index] = line[: len(line) - len(stripped)] + "pass\n"  # same numbering
                continue
            if stripped[:1] in ("%", "!"):
                word = stripped.split()[0] if stripped.split() else stripped[:1]
                raise SyntaxError(
                    f"{word!r} is IPython syntax; this kernel runs plain Python (a "
                    "KernelSession(shell='ipython') has magics and ! commands)",
                    (filename, exc.lineno, 1, line),
                ) from None
            raise
    return ast.parse(code, filename=filename)  # pragma: no cover - every pass drops a line


def format_exception(exc: BaseException) -> list[str]:
    """The traceback of a cell's exception, the kernel's own frames left out."""
    trace = traceback.TracebackException.from_exception(exc, capture_locals=False)
    stack = trace.stack
    while stack and os.path.abspath(stack[0].filename) == HERE:
        del stack[0]
    lines: list[str] = []
    if stack:
        lines.append("Traceback (most recent call last):")
        for frame in stack:
            if frame.filename.startswith("<cell "):
                where = f"Cell In[{frame.filename[6:-1]}], line {frame.lineno}"
            else:
                where = f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'
            lines.append(f"  {where}")
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
    lines.extend(line.rstrip("\n") for line in trace.format_exception_only())
    return lines


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception's ``__str__`` itself fails."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__} object>"


def _no_input(prompt: Any = "") -> str:
    raise RuntimeError("input() is not available: the kernel has no stdin")


def _route_ipython_display(shell: Shell) -> None:
    """Make ``IPython.display.display`` (and friends) show through this kernel."""

    def publish_display_data(data: Any, metadata: Any = None, **kwargs: Any) -> None:
        shell.show(data, metadata, kwargs.get("transient"))

    def clear_output(wait: bool = False) -> None:
        shell.display_pub.clear_output(wait)

    replacements = {
        "display": shell.display,
        "publish_display_data": publish_display_data,
        "clear_output": clear_output,
    }

    def patch(module: Any) -> None:
        for name, value in replacements.items():
            if hasattr(module, name):
                setattr(module, name, value)

    targets = ("IPython.display", "IPython.core.display", "IPython.core.display_functions")
    for name in targets:
        if name in sys.modules:
            patch(sys.modules[name])

    class _Patcher:
        """Patch those modules as they are imported (a meta-path hook, nothing else)."""

        def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
            if fullname not in targets:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(fullname)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            run = loader.exec_module

            def exec_module(module: Any) -> None:
                run(module)
                patch(module)

            loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    if not all(name in sys.modules for name in targets):
        sys.meta_path.insert(0, _Patcher())


class _PrivateModules:
    """Makes this folder's kernel-side modules importable by name, and nothing else of it."""

    NAMES = ("_lean_figures",)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.NAMES:
            return None
        location = os.path.join(os.path.dirname(HERE), f"{fullname}.py")
        return importlib.util.spec_from_file_location(fullname, location)


FIGURE_BACKEND = "module://_lean_figures"
_SHELL: list[Shell] = []  # the running kernel's shell, for show_figures()


def show_figures() -> None:
    """Show every open matplotlib figure as PNG display data, then close them all."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or not _SHELL:
        return
    shell = _SHELL[0]
    try:
        numbers = pyplot.get_fignums()
    except Exception:
        return
    for number in numbers:
        try:
            figure = pyplot.figure(number)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", bbox_inches="tight")
            width, height = figure.get_size_inches() * figure.dpi
            data = {
                "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                "text/plain": f"<Figure size {width:g}x{height:g} with {len(figure.axes)} Axes>",
            }
            shell.show(data)
        except Exception:
            traceback.print_exc()
    if numbers:
        pyplot.close("all")


def _inline_figures(shell: Shell) -> None:
    """Route matplotlib to ``_lean_figures`` and show open figures after each cell."""
    _SHELL[:] = [shell]
    backend = os.environ.get("MPLBACKEND", "")
    if not backend or backend.startswith("module://matplotlib_inline"):
        os.environ["MPLBACKEND"] = FIGURE_BACKEND
        matplotlib = sys.modules.get("matplotlib")  # preloaded: it read the old value
        if matplotlib is not None and "matplotlib.pyplot" not in sys.modules:
            matplotlib.rcParams["backend"] = FIGURE_BACKEND
    shell.events.register("post_execute", show_figures)


def main(connection_file: str) -> None:
    """Start the kernel described by ``connection_file`` and serve until shutdown."""
    with open(connection_file, encoding="utf-8") as handle:
        connection = json.load(handle)
    Kernel(connection).serve()


def connection_file_from(argv: list[str]) -> str:
    """The ``-f FILE`` (or ``--f=FILE``) argument of a kernel command line."""
    for index, arg in enumerate(argv):
        if arg in ("-f", "--f", "--connection-file") and index + 1 < len(argv):
            return argv[index + 1]
        for prefix in ("-f=", "--f=", "--connection-file="):
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    raise SystemExit("the lean kernel needs -f CONNECTION_FILE")


if __name__ == "__main__":
    main(connection_file_from(sys.argv[1:]))
