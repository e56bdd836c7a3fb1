"""Real uvicorn servers for the end-to-end benchmarks, always on 127.0.0.1 and a free port.

``UvicornProcess`` runs one in a process of its own, as a real server is. Not in a thread of
the benchmark's process: there the server's work after it has answered would hold the GIL that
the client needs to read the answer, and that waiting would be charged to the variant.

The listening socket is bound with ``IPPROTO_TCP`` named, as a socket from
``getaddrinfo`` has it: asyncio only sets ``TCP_NODELAY`` on accepted sockets of that protocol,
and without it Nagle's algorithm and delayed ACKs add 40 ms to every response. The socket is
listening before the server starts, so requests can be sent at once (the kernel queues the
connection until uvicorn accepts it).

``HttpConnection`` is the client side: one keep-alive connection, nothing more.

``python -m benchmarks._servers MODULE:FACTORY LOOP`` is the process server's entry point: it
prints the port, then serves ``FACTORY()`` until terminated.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ("HttpConnection", "UvicornProcess")

_REPO = Path(__file__).parents[1]


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _server(app: Any, loop_name: str, **config: Any) -> uvicorn.Server:
    options: dict[str, Any] = {
        "loop": loop_name,
        "lifespan": "off",
        "log_level": "warning",
        "access_log": False,
    }
    options.update(config)
    return uvicorn.Server(uvicorn.Config(app, **options))


class UvicornProcess:
    """uvicorn serving ``factory()`` in a child process, as a context manager.

    ``factory`` is ``"module:callable"``, importable from the repository's root, returning the
    ASGI app; uvicorn's lifespan is on (the app starts up as it would in production).
    """

    def __init__(self, factory: str, loop_name: str = "asyncio") -> None:
        self.command = [sys.executable, "-m", "benchmarks._servers", factory, loop_name]
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> UvicornProcess:
        self.process = subprocess.Popen(self.command, cwd=_REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.__exit__()
            raise RuntimeError(f"benchmark server {self.command[3]} did not start")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client: GET, read the head, read Content-Length bytes.

    The end-to-end benchmarks use it instead of a full client: httpx costs some 0.4 ms a
    request on this machine, more than the server side of a small request, and that constant
    added to every variant would pull the ratios towards 1.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> HttpConnection:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _serve(factory: str, loop_name: str) -> None:
    module_name, _, attribute = factory.partition(":")
    app = getattr(importlib.import_module(module_name), attribute)()
    sock = _listening_socket()
    print(sock.getsockname()[1], flush=True)
    # Keep-alive connections may idle for a while (another route's phase, the other servers'
    # bursts): uvicorn's default 5 s would close them under the client.
    _server(app, loop_name, lifespan="on", timeout_keep_alive=600).run(sockets=[sock])


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
