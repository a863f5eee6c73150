"""Running the server, and loading the demo data through the real pipeline."""

from __future__ import annotations

import logging
import os
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import uvicorn

from kindred.api.app import create_app
from kindred.api.fastpath import FastPath
from kindred.api.hot_protocol import HOT_PROTOCOL
from kindred.bootstrap import build
from kindred.bootstrap.collector import serving_collector
from kindred.bootstrap.writer_process import WriterProcess, socket_path
from kindred.cli.demo import load_demo
from kindred.config import Settings, load_settings
from kindred.domain.redact import redact_url
from kindred.observability import configure_logging

__all__ = ["Tls", "run_server"]

log = logging.getLogger("kindred.serve")


@dataclass(frozen=True)
class Tls:
    """A PEM certificate (chain) file and its private key file: the server speaks HTTPS."""

    cert: str
    key: str

    def check(self) -> None:
        """Load the pair once, so that a bad file fails at start with a clear message."""
        try:
            # An encrypted key is refused here rather than prompted for on the terminal.
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.cert, self.key, password=lambda: b""
            )
        except (OSError, ssl.SSLError) as exc:
            raise click.ClickException(
                f"--tls-cert/--tls-key: cannot load {self.cert} with {self.key}: {exc}"
            ) from None


def run_server(
    settings: Settings,
    *,
    host: str | None,
    port: int | None,
    demo_data: bool,
    workers: int | None = None,
    tls: Tls | None = None,
) -> None:
    workers = workers or settings.server.workers
    host = host or settings.server.host
    port = port or settings.server.port
    if tls is not None:
        tls.check()
    _private_data_dir(settings.data_dir)
    if demo_data:
        container = build(settings)
        container.migrate()
        log.info("demo data: %s", load_demo(container))
        container.close()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": HOT_PROTOCOL,
        "access_log": False,
        "log_config": None,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    if tls is not None:
        options["ssl_certfile"] = tls.cert
        options["ssl_keyfile"] = tls.key
    _announce(settings, host, port, scheme="https" if tls else "http", demo_loaded=demo_data)
    writer = _writer_process(settings)
    try:
        if workers == 1:
            uvicorn.Server(uvicorn.Config(_server_app(settings), **options)).run()
            return
        _settings_to_children(settings)
        uvicorn.run("kindred.cli.serve:worker_app", factory=True, workers=workers, **options)
    finally:
        if writer is not None:
            writer.stop()  # after the HTTP processes: their last batches are answered


def _settings_to_children(settings: Settings) -> None:
    """Worker processes and the writer process build their own container from the same
    settings, which reach them through the environment (see kindred.config.load_settings)."""
    os.environ["KINDRED_CONFIG"] = "" if settings.source == "<demo>" else settings.source
    os.environ["KINDRED_DATA_DIR"] = settings.data_dir
    os.environ["KINDRED_STORE_URL"] = settings.store.url
    os.environ["KINDRED_ROLE"] = settings.server.role
    os.environ["KINDRED_WRITER_PROCESS"] = "1" if settings.server.writer_process else "0"


def _writer_process(settings: Settings) -> WriterProcess | None:
    """With `server.writer_process`, the writer process started (and watched) before
    the HTTP processes."""
    if not settings.server.writer_process:
        return None
    _settings_to_children(settings)
    writer = WriterProcess(socket_path(settings), Path(settings.data_dir) / "writer.pid")
    # uvicorn answers SIGTERM by draining, then sends it to itself again with the handler
    # it found: SystemExit here, so that the writer process is stopped after the drain.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    writer.start()
    return writer


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _private_data_dir(path: str) -> None:
    """The data directory (the store, key files) private to the service user: 0700."""
    data = Path(path)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if data.stat().st_mode & 0o077:
        data.chmod(0o700)


def worker_app() -> FastPath:
    """The app of one worker process of `kindred serve --workers N`."""
    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    return _server_app(settings)


def _server_app(settings: Settings) -> FastPath:
    writer_socket = socket_path(settings) if settings.server.writer_process else None
    app = create_app(build(settings, writer_socket=writer_socket))
    serving_collector()
    return app


def _announce(
    settings: Settings, host: str, port: int, *, scheme: str = "http", demo_loaded: bool = False
) -> None:
    base = f"{scheme}://{host}:{port}"
    demo = settings.source == "<demo>"
    print(
        f"Kindred listening on {base}\n"
        f"  config:   {settings.source}\n" + _role_line(settings) + ""
        # The store URL's password (and any password= or token in it) is never printed.
        f"  store:    {redact_url(settings.store.url)} (data dir {settings.data_dir})\n"
        + _inputs(settings)
        + f"  send:     POST {base}/v2/events  ({_basic_example(settings)})\n"
        f"  health:   {base}/healthz   metrics: {base}/metrics\n"
        + (f"  web UI:   {base}/ui/\n" if settings.ui.users else "")
        + "  profiles: kindred profile get --identity "
        # A user the demo data has, when it was loaded; else a placeholder to fill in.
        + ("customer_id=demo-0001" if demo and demo_loaded else "customer_id=ID")
        + (f" --data-dir {settings.data_dir}" if settings.data_dir != "data" else "")
        + _demo_warning(settings, base),
        flush=True,
    )


def _role_line(settings: Settings) -> str:
    """Role api and worker say so, and where their batch log is; role all says nothing."""
    role = settings.server.role
    if role == "all":
        return ""
    stream = settings.stream
    return (
        f"  role:     {role} (batch log {stream.name} on {redact_url(stream.url)},"
        f" {stream.partitions} partitions)\n"
    )


_LISTED_INPUTS = 12


def _inputs(settings: Settings) -> str:
    """The inputs the config really has: name, source type, API key (never the secret)."""
    found = [
        f"{i.name} ({i.source_type}, key {i.api_key})"
        for a in settings.accounts
        for w in a.workspaces
        for i in w.inputs
    ]
    if not found:
        return "  inputs:   none\n"
    shown = found[:_LISTED_INPUTS]
    if len(found) > len(shown):
        shown.append(f"and {len(found) - len(shown)} more")
    return "".join(f"  {'inputs:' if n == 0 else '':<9} {text}\n" for n, text in enumerate(shown))


def _basic_example(settings: Settings) -> str:
    """How to authenticate a batch: with the demo config its published server input's
    key and secret; with any other config, a key it has and a placeholder for the secret."""
    inputs = [i for a in settings.accounts for w in a.workspaces for i in w.inputs]
    server = next((i for i in inputs if i.source_type != "web"), None)
    if server is None:
        return "Basic API_KEY:API_SECRET of a server or feed input"
    if settings.source == "<demo>":
        return f"Basic {server.api_key}:{server.api_secret}"
    return f"Basic {server.api_key}:API_SECRET of input {server.name}"


def _demo_warning(settings: Settings, base: str) -> str:
    """With the demo config, its published credentials are in use: say so, and name the
    admin token the docs' examples use. Any other config's secrets are never printed."""
    if settings.source != "<demo>":
        return ""
    return (
        f"\n  admin:    {base}/admin/v1/  (Bearer {settings.admin.token})"
        "\n  WARNING:  the demo config is in use: its input keys, Profile API credential,"
        " UI password and admin token are published. For trying Kindred on this machine"
        " only; give a config of your own (--config) for anything else."
    )
