"""Running the app: open the models, bind the socket, serve with uvicorn until SIGTERM or Ctrl-C.

On SIGTERM (or SIGINT) uvicorn stops accepting connections, lets the requests in flight finish
(up to ``drain_s``), then the app's shutdown stops the batchers; the process then exits 0. The
server holds no state between requests, so any number of replicas can run behind a load balancer;
each one's ``/v2/health/ready`` says whether to send it traffic.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zoo.errors import InputError
from zoo.serve.batching import batch_limit
from zoo.serve.models import ModelSet, ModelSpec, load_models
from zoo.serve.settings import ServeSettings

__all__ = ["Running", "bind", "serve", "prepare"]


@dataclass
class Running:
    """A prepared server: its app, its bound socket and the URL it answers on."""

    app: Any
    models: ModelSet
    sock: socket.socket
    url: str
    settings: ServeSettings

    def config(self, log_level: str = "warning") -> Any:
        import uvicorn

        return uvicorn.Config(self.app, log_level=log_level, access_log=False, lifespan="on",
                              timeout_graceful_shutdown=self.settings.drain_s, timeout_keep_alive=5)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputError(f"--host {host}: not an address this machine has ({exc.strerror or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                         f"(or stop what uses it)") from None
    sock.set_inheritable(True)
    return sock


def prepare(models: Sequence[str | ModelSpec], settings: ServeSettings) -> Running:
    """Open the models and bind the socket: everything that can fail, before serving."""
    from zoo.serve.app import build_app

    plan = settings.plan()
    opened = load_models(models, provider=settings.provider, threads=plan.session_threads)
    app = build_app(opened, settings)
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return Running(app, opened, sock, f"http://{shown}:{port}", settings)


def serve(models: Sequence[str | ModelSpec], settings: ServeSettings, *,
          announce: Callable[[str], None] = print, log_level: str = "warning") -> None:
    """Serve ``models`` until SIGTERM or Ctrl-C (drained, then returns)."""
    import uvicorn

    running = prepare(models, settings)
    plan = settings.plan()
    announce(f"zoo serve: listening on {running.url}")
    for m in running.models:
        announce(f"  {m.name} v{m.version}: {m.info.kind}, {m.info.modality}, {m.info.precision}, sha256 "
                 f"{m.sha256[:12]}, batches of up to {batch_limit(settings.max_batch, m.info, m.model.providers)} "
                 f"({m.path})")
    announce(f"  a batch waits {settings.max_delay_ms:g} ms at most; {plan.workers} at once on "
             f"{plan.session_threads} thread(s) each; at most {settings.max_concurrent} requests at once; "
             f"page: {running.url}/")
    server = uvicorn.Server(running.config(log_level))
    if threading.current_thread() is threading.main_thread():
        # uvicorn handles the signal (drain), then raises it again for the handler it found: a
        # no-op here, so a drained server returns (exit 0) instead of dying of the signal afterwards
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, frame: None)
    try:
        server.run(sockets=[running.sock])
    finally:
        running.sock.close()
    announce("zoo serve: stopped (requests in flight were answered)")
