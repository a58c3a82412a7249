"""Test helpers that stand in for the outside world: a TCP proxy that can cut a
connection (a database going away), and a reader of the attribution queue."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from celery import Celery

from workers.app import ATTRIBUTION_QUEUE


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream; `cut()` drops every connection."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        self.open = False
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
        self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def queued_payment_ids(app: Celery, wanted: set[str], timeout: float = 10.0) -> set[str]:
    """Read attribution messages until every id in `wanted` was seen (or time runs out).

    Messages are consumed: use only where no worker is running.
    """
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    with app.connection_for_read() as connection:
        queue: Any = connection.SimpleQueue(ATTRIBUTION_QUEUE)
        try:
            while not wanted <= seen and time.monotonic() < deadline:
                try:
                    message = queue.get(block=True, timeout=0.5)
                except queue.Empty:
                    continue
                args = message.payload[0]
                seen.update(args[0])
                message.ack()
        finally:
            queue.close()
    return seen & wanted
