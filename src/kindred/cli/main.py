"""`kindred`: serve, migrate, demo, import, profile, credentials, sweep."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import msgspec

from kindred.bootstrap import Container, build
from kindred.cli.common import config_option, data_dir_option, existing_store, settings_of
from kindred.config import Settings, with_role, with_writer_process
from kindred.domain.credentials import CREDENTIAL_SCOPES, PROFILES_SCOPE
from kindred.domain.errors import KindredError, StoreUnavailable
from kindred.observability import configure_logging

__all__ = ["main"]

_config_option = config_option
_data_dir_option = data_dir_option
_settings = settings_of


def _started(settings: Settings, *, create: bool = False) -> Container:
    """A container on the store, migrated; unless `create`, the store must exist."""
    container = build(settings if create else existing_store(settings))
    container.migrate()
    return container


@click.group()
def main() -> None:
    """Kindred: a self-hosted customer profile engine."""
    # Every file and directory a command makes (the store, its WAL, key files, jsonl
    # outputs, the data directory) is private to the service user.
    os.umask(0o077)


@main.command()
@_config_option
@_data_dir_option
@click.option("--host", help="Address to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default from config: 8080).")
@click.option("--demo-data", is_flag=True, help="Load the demo data before serving.")
@click.option("--workers", type=click.IntRange(min=1), help="Server processes (default: 1).")
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    help="all: everything in one process (default, from config server.role); api: the"
    " HTTP API, batches appended to the batch log; worker: the batch log applied and the"
    " background jobs. api and worker need PostgreSQL and JetStream (docs/deployment.md).",
)
@click.option(
    "--writer-process",
    is_flag=True,
    default=None,
    help="Apply the events API's batches in a process of their own, fed by the HTTP"
    " processes (default from config server.writer_process; role all).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM certificate (chain) file: serve HTTPS. Needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM private key file of --tls-cert.",
)
def serve(
    *,
    config_path: str | None,
    data_dir: str | None,
    host: str | None,
    port: int | None,
    demo_data: bool,
    workers: int | None,
    role: str | None,
    writer_process: bool | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the HTTP server (HTTPS with --tls-cert and --tls-key)."""
    from kindred.cli.serve import Tls, run_server  # noqa: PLC0415 - keeps other commands light

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: give both or neither")
    tls = Tls(cert=tls_cert, key=tls_key) if tls_cert and tls_key else None
    settings = _settings(config_path, data_dir)
    if role is not None:
        settings = with_role(settings, role)
    if writer_process:
        settings = with_writer_process(settings)
    configure_logging(settings.server.log_level, settings.server.log_format)
    run_server(settings, host=host, port=port, demo_data=demo_data, workers=workers, tls=tls)


@main.command()
@_config_option
@_data_dir_option
def migrate(config_path: str | None, data_dir: str | None) -> None:
    """Create or upgrade the store's schema."""
    container = build(_settings(config_path, data_dir))
    version = container.migrate()
    container.close()
    click.echo(f"schema at version {version}")


@main.command()
@_config_option
@_data_dir_option
def compact(config_path: str | None, data_dir: str | None) -> None:
    """Give back the store's free space and lay its rows out in key order (SQLite: VACUUM;
    PostgreSQL: VACUUM ANALYZE). Writes wait meanwhile: run it with the server stopped."""
    container = build(existing_store(_settings(config_path, data_dir)))
    try:
        before, after = container.compact()
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        container.close()
    click.echo(f"store: {before / 1e6:,.1f} MB before, {after / 1e6:,.1f} MB after")


@main.command()
@_config_option
@_data_dir_option
def demo(config_path: str | None, data_dir: str | None) -> None:
    """Load the demo data (safe to repeat: nothing is loaded twice)."""
    from kindred.cli.demo import load_demo  # noqa: PLC0415

    container = _started(_settings(config_path, data_dir), create=True)
    try:
        click.echo(load_demo(container))
    finally:
        container.close()


@main.command()
@click.option(
    "--into",
    "target_url",
    required=True,
    help="Store URL to rebuild into (sqlite:////abs/path.db or postgresql://...); must be empty.",
)
@_config_option
@_data_dir_option
def rebuild(target_url: str, config_path: str | None, data_dir: str | None) -> None:
    """Rebuild every profile from the event log into another store."""
    settings = _settings(config_path, data_dir)
    source = _started(settings)
    target_settings = msgspec.structs.replace(
        settings, store=msgspec.structs.replace(settings.store, url=target_url)
    )
    target = _started(target_settings, create=True)
    try:
        if target.profiles.count():
            raise click.ClickException(f"--into: {target_url} already holds profiles")
        tally = source.rebuild.into(target.commands.run_all)
    finally:
        source.close()
        target.close()
    click.echo(msgspec.json.encode(tally).decode())


@main.group("import")
def import_group() -> None:
    """Import data from files."""


@import_group.command("csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "input_name", required=True, help="Name of the CSV import input.")
@_config_option
@_data_dir_option
def import_csv(file: str, input_name: str, config_path: str | None, data_dir: str | None) -> None:
    """Import identities and user attributes from a CSV file."""
    container = _started(_settings(config_path, data_dir))
    source = container.tenancy.input_named(input_name)
    if source is None:
        raise click.ClickException(f"--input: no input named {input_name!r}")
    try:
        report = container.csv_import_direct.run(Path(file).read_text(encoding="utf-8-sig"), source)
    finally:
        container.close()
    click.echo(msgspec.json.format(msgspec.json.encode(report.as_dict())).decode())
    if report.errors:
        sys.exit(1)


@main.group()
def profile() -> None:
    """Inspect stored profiles."""


@profile.command("get")
@click.option("--mpid", type=int, help="The profile's MPID.")
@click.option("--identity", help="TYPE=VALUE, e.g. email=ann@example.com.")
@click.option("--workspace", type=int, help="Workspace whose identity scope to search.")
@_config_option
@_data_dir_option
def profile_get(
    mpid: int | None,
    identity: str | None,
    workspace: int | None,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Print a stored profile as JSON."""
    from kindred.services.profiles.queries import profile_document  # noqa: PLC0415

    if (mpid is None) == (identity is None):
        raise click.UsageError("give exactly one of --mpid or --identity")
    container = _started(_settings(config_path, data_dir))
    queries = container.profiles
    try:
        if mpid is not None:
            found = queries.by_mpid(mpid)
        else:
            id_type, sep, value = (identity or "").partition("=")
            if not sep:
                raise click.UsageError("--identity takes TYPE=VALUE")
            found = queries.by_identity(id_type, value, workspace)
    except KindredError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        container.close()
    click.echo(msgspec.json.format(msgspec.json.encode(profile_document(found))).decode())


@main.group()
def credentials() -> None:
    """Profile API credentials: create, list, revoke (secrets are stored hashed)."""


@credentials.command("create")
@click.option(
    "--workspace", "workspaces", type=int, multiple=True, required=True, help="Repeatable."
)
@click.option("--name", default="", help="A description, e.g. the service that uses it.")
@click.option("--rate", type=click.FloatRange(min=0.001), default=15.0, help="Requests/s.")
@click.option("--burst", type=click.IntRange(min=1), default=30, help="Requests saved up.")
@click.option(
    "--scope",
    "scopes",
    type=click.Choice(sorted(CREDENTIAL_SCOPES)),
    multiple=True,
    default=[PROFILES_SCOPE],
    show_default=True,
    help="What its tokens may do (repeatable): read profiles, list audiences.",
)
@_config_option
@_data_dir_option
def credentials_create(
    *,
    workspaces: tuple[int, ...],
    name: str,
    rate: float,
    burst: int,
    scopes: tuple[str, ...],
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Create a credential; its secret is printed once and never again."""
    container = _started(_settings(config_path, data_dir))
    try:
        unknown = sorted(set(workspaces) - set(container.tenancy.workspaces))
        if unknown:
            raise click.ClickException(f"--workspace: no workspace with id {unknown[0]}")
        issued = container.credentials.create(
            workspaces, name=name, rate_limit_per_s=rate, rate_limit_burst=burst, scopes=scopes
        )
    finally:
        container.close()
    click.echo(msgspec.json.format(msgspec.json.encode(issued)).decode())


@credentials.command("list")
@_config_option
@_data_dir_option
def credentials_list(config_path: str | None, data_dir: str | None) -> None:
    """List credentials (from the config file and the store), without secrets."""
    container = _started(_settings(config_path, data_dir))
    try:
        rows = [
            {
                "client_id": c.client_id,
                "name": c.name,
                "workspaces": sorted(c.workspaces),
                "scopes": sorted(c.scopes),
                "rate_limit_per_s": c.rate_limit_per_s,
                "rate_limit_burst": c.rate_limit_burst,
                "origin": c.origin,
                "revoked_ms": c.revoked_ms,
            }
            for c in container.credentials.all()
        ]
    finally:
        container.close()
    click.echo(msgspec.json.format(msgspec.json.encode(rows)).decode())


@credentials.command("revoke")
@click.argument("client_id")
@_config_option
@_data_dir_option
def credentials_revoke(client_id: str, config_path: str | None, data_dir: str | None) -> None:
    """Revoke a credential: its tokens stop working within seconds, in every process."""
    container = _started(_settings(config_path, data_dir))
    try:
        container.credentials.revoke(client_id)
    except KindredError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        container.close()
    click.echo(f"revoked {client_id}")


@credentials.command("hash-secret")
@click.option("--secret", prompt=True, hide_input=True, help="Read from a prompt when omitted.")
def credentials_hash_secret(secret: str) -> None:
    """Print a hash of a secret for `client_secret_hash` in the config file."""
    from kindred.domain.credentials import hash_secret  # noqa: PLC0415
    from kindred.system import SecureSecrets  # noqa: PLC0415

    click.echo(hash_secret(secret, SecureSecrets().token_bytes(16)))


@main.command()
@_config_option
@_data_dir_option
def sweep(config_path: str | None, data_dir: str | None) -> None:
    """Delete the profiles past their account's lifetime now (safe beside running servers)."""
    container = _started(_settings(config_path, data_dir))
    try:
        report = container.sweep.run()
    finally:
        container.close()
    click.echo(msgspec.json.encode(report).decode())


def _register_command_modules() -> None:
    from kindred.cli.abtests import test  # noqa: PLC0415
    from kindred.cli.attributes import attributes  # noqa: PLC0415
    from kindred.cli.audience_shadows import shadow  # noqa: PLC0415
    from kindred.cli.audiences import audiences  # noqa: PLC0415
    from kindred.cli.connections import connections, deliver  # noqa: PLC0415
    from kindred.cli.dsr import dsr  # noqa: PLC0415
    from kindred.cli.identity import identity, quarantine  # noqa: PLC0415
    from kindred.cli.keys import keys  # noqa: PLC0415
    from kindred.cli.retention import profiles, retention  # noqa: PLC0415
    from kindred.cli.stream import stream  # noqa: PLC0415
    from kindred.cli.ui import ui  # noqa: PLC0415
    from kindred.cli.users import users  # noqa: PLC0415

    main.add_command(attributes)
    audiences.add_command(shadow)
    main.add_command(audiences)
    audiences.add_command(test)
    main.add_command(connections)
    main.add_command(deliver)
    main.add_command(dsr)
    main.add_command(identity)
    main.add_command(keys)
    main.add_command(profiles)
    main.add_command(quarantine)
    main.add_command(retention)
    main.add_command(stream)
    main.add_command(ui)
    main.add_command(users)


_register_command_modules()
