"""URL inputs: total deadline, byte cap, schemes and redirects, against a real local server."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from langchain_codevision.images import MAX_REDIRECTS, ImageInputError, load_image

MIB = 2**20


def png_bytes() -> bytes:
    rng = np.random.default_rng(2)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = png_bytes()


class Server:
    """A local HTTP server whose paths misbehave in chosen ways.

    Every slow handler gives up by itself after ``HANDLER_LIMIT_S`` seconds, when the client
    goes away, or when the test ends, so no thread outlives the test for long.
    """

    HANDLER_LIMIT_S = 10.0

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.finished: dict[str, threading.Event] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                done = owner.finished.setdefault(self.path, threading.Event())
                try:
                    owner.route(self)
                except OSError:  # the client hung up
                    pass
                finally:
                    done.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def drip(self, handler: BaseHTTPRequestHandler, data: bytes, every_s: float = 1.0) -> None:
        start = time.monotonic()
        for byte in data:
            if self.stop.is_set() or time.monotonic() - start > self.HANDLER_LIMIT_S:
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            self.stop.wait(every_s)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path in ("/ok.png", "/ok.png?size=small"):
            self.reply(h, 200, PNG, {"Content-Type": "image/png"})
        elif path == "/chunked.png":
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for start in range(0, len(PNG), 500):
                piece = PNG[start : start + 500]
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        elif path == "/missing.png":
            self.reply(h, 404, b"not here")
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            target = "/ok.png" if left == 0 else f"/hop/{left - 1}"
            self.reply(h, 302, b"", {"Location": target})
        elif path == "/relative":
            self.reply(h, 301, b"", {"Location": "ok.png?size=small"})
        elif path == "/see-other":
            self.reply(h, 303, b"", {"Location": f"{self.url}/ok.png"})
        elif path == "/loop":
            self.reply(h, 307, b"", {"Location": "/loop"})
        elif path == "/to-file":
            self.reply(h, 302, b"", {"Location": "file:///etc/passwd"})
        elif path == "/to-ftp":
            self.reply(h, 302, b"", {"Location": "ftp://127.0.0.1/x.png"})
        elif path == "/no-location":
            self.reply(h, 302, b"")
        elif path == "/announces-10-mib":
            h.send_response(200)
            h.send_header("Content-Length", str(10 * MIB))
            h.end_headers()
            h.wfile.flush()
            self.stop.wait(self.HANDLER_LIMIT_S)  # never sends the body
        elif path == "/streams-2-mib":
            h.send_response(200)
            h.send_header("Connection", "close")
            h.end_headers()
            for _ in range(32):
                h.wfile.write(b"\0" * (64 * 1024))
        elif path == "/drip-body":
            h.send_response(200)
            h.send_header("Content-Length", str(len(PNG)))
            h.end_headers()
            h.wfile.flush()
            self.drip(h, PNG)
        elif path == "/drip-headers":
            self.drip(h, b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Slow: " + b"x" * 100)
        elif path == "/silent":
            self.stop.wait(self.HANDLER_LIMIT_S)

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, status: int, body: bytes, headers=None) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        running.close()


def test_downloads_plain_chunked_and_redirected(server) -> None:
    expected = np.asarray(Image.open(io.BytesIO(PNG)))
    for path in ("/ok.png", "/chunked.png", "/relative", "/see-other", "/hop/3"):
        image = load_image(f"{server.url}{path}", url_timeout=5)
        assert np.array_equal(np.asarray(image), expected), path
    assert load_image(f"{server.url}/hop/{MAX_REDIRECTS - 1}", url_timeout=5).size == (40, 30)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.png", "could not download .*HTTP 404"),
        (f"/hop/{MAX_REDIRECTS}", f"more than {MAX_REDIRECTS} redirects"),
        ("/loop", "more than 5 redirects"),
        ("/to-file", "redirect to a non-http\\(s\\) URL refused: 'file:///etc/passwd'"),
        ("/to-ftp", "redirect to a non-http\\(s\\) URL refused"),
        ("/no-location", "redirect without a Location header"),
    ],
)
def test_bad_responses_and_redirects_are_refused(server, path, message) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageInputError, match=message):
        load_image(f"{server.url}{path}", url_timeout=5)
    assert time.perf_counter() - start < 2


def test_an_announced_size_over_the_cap_is_refused_before_the_body(server) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageInputError) as caught:
        load_image(f"{server.url}/announces-10-mib", max_bytes=MIB, url_timeout=5)
    assert time.perf_counter() - start < 1
    message = str(caught.value)
    assert "announces 10.0 MiB (10,485,760 bytes) (Content-Length)" in message
    assert "cap of 1.0 MiB (1,048,576 bytes)" in message


def test_a_body_over_the_cap_without_a_length_is_cut_off(server) -> None:
    with pytest.raises(ImageInputError, match=r"more than 1.0 MiB .* received, over the cap"):
        load_image(f"{server.url}/streams-2-mib", max_bytes=MIB, url_timeout=5)


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers", "/silent"])
def test_a_slow_server_fails_at_the_total_deadline(server, path) -> None:
    """One byte per second satisfies any per-read timeout; the total deadline still holds."""
    start = time.perf_counter()
    with pytest.raises(ImageInputError) as caught:
        load_image(f"{server.url}{path}", url_timeout=2)
    elapsed = time.perf_counter() - start
    assert 1.9 <= elapsed < 3.0, elapsed
    assert "within the total deadline of 2 s" in str(caught.value)
    assert "url_timeout" in str(caught.value)
    if path != "/silent":  # the dripping handler notices the hang-up and stops by itself
        assert server.finished[path].wait(4)


def test_other_schemes_are_refused() -> None:
    for url in ("ftp://127.0.0.1/x.png", "gopher://127.0.0.1/x", "file://elsewhere/y.png"):
        with pytest.raises(ImageInputError, match=r"unsupported URL scheme|file URLs"):
            load_image(url)
    with pytest.raises(ImageInputError, match="unsupported URL scheme 'ftp'"):
        load_image("FTP://127.0.0.1/x.png")


def test_a_closed_port_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(ImageInputError, match="could not download"):
        load_image(f"http://127.0.0.1:{port}/x.png", url_timeout=5)
    assert time.perf_counter() - start < 2


def test_https_never_redirects_down_to_http() -> None:
    from langchain_codevision.images import _DownloadError, _redirect_target

    with pytest.raises(_DownloadError, match="from https down to http refused"):
        _redirect_target("https://example.test/a.png", "http://example.test/a.png")
    assert _redirect_target("http://h.test/a/b.png", "../c.png") == "http://h.test/c.png"
    assert _redirect_target("http://h.test/a.png", "https://h.test/a.png").startswith("https")
