"""uvicorn glue for ``recommender serve``: a listener that keeps ``TCP_NODELAY``.

uvicorn binds the socket it shares between worker processes with ``proto`` 0;
accepted connections inherit it, and asyncio turns ``TCP_NODELAY`` on only for
sockets that say ``IPPROTO_TCP``. Without it, every keep-alive response after
the first waits ~40 ms for the client's delayed ACK (uvicorn issue 3149): a
5 ms query became 45-60 ms with ``--workers 2`` here. This module is imported
only by ``serve``, and the class lives at module level because uvicorn pickles
the config into each worker process.
"""

from __future__ import annotations

import inspect
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

__all__ = ["TcpConfig", "run"]


class TcpConfig(uvicorn.Config):
    """A uvicorn config whose shared listening socket is created as TCP."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return sock
        tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        tcp.set_inheritable(True)
        return tcp


def run(config: TcpConfig) -> None:
    """What ``uvicorn.run`` does with a config, minus reload (not offered)."""
    if config.workers == 1:
        uvicorn.Server(config).run()
        return
    sockets = [config.bind_socket()]
    # Older uvicorn releases took the worker's entry point; newer ones build it themselves.
    if "target" in inspect.signature(Multiprocess).parameters:
        supervisor = Multiprocess(config, target=uvicorn.Server(config).run, sockets=sockets)  # type: ignore[call-arg]
    else:
        supervisor = Multiprocess(config, sockets=sockets)
    supervisor.run()
