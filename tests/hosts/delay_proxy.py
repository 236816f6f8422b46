"""A TCP proxy that can delay one direction (the answers, upstream to client) by a fixed time: a slow link.

netem is not in this kernel, so the slow link is a host of its own in the path. SIGUSR1 turns the delay on,
SIGUSR2 off; bytes keep their order and nothing is dropped.

    python delay_proxy.py LISTEN_HOST:PORT UPSTREAM_HOST:PORT DELAY_MS
"""

from __future__ import annotations

import queue
import signal
import socket
import sys
import threading
import time

delay_s = 0.0
configured_s = 0.0


def _on(*_: object) -> None:
    global delay_s
    delay_s = configured_s


def _off(*_: object) -> None:
    global delay_s
    delay_s = 0.0


def pump(source: socket.socket, sink: socket.socket, delayed: bool) -> None:
    """Copy source to sink; when `delayed`, each chunk is sent delay_s after it arrived."""
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def send() -> None:
        while True:
            due, data = chunks.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                sink.sendall(data)
            except OSError:
                break
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        while data := source.recv(65536):
            chunks.put((time.monotonic() + (delay_s if delayed else 0.0), data))
    except OSError:
        pass
    chunks.put((0.0, b""))
    sender.join()
    for sock in (source, sink):
        try:
            sock.close()
        except OSError:
            pass


def serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    server = socket.create_server(listen, reuse_port=False, backlog=256)
    while True:
        client, _ = server.accept()
        try:
            target = socket.create_connection(upstream, timeout=5)
            target.settimeout(None)
        except OSError:
            client.close()
            continue
        for sock in (client, target):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, target, False), daemon=True).start()
        threading.Thread(target=pump, args=(target, client, True), daemon=True).start()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    configured_s = float(sys.argv[3]) / 1000
    signal.signal(signal.SIGUSR1, _on)
    signal.signal(signal.SIGUSR2, _off)
    serve(address(sys.argv[1]), address(sys.argv[2]))
