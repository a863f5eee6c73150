"""`kindred dsr ...`: data subject requests (docs/privacy.md) from the host: list, show,
create, cancel, results, run-due; erasure receipts: receipt, receipts, verify; the
processor certificate."""

from __future__ import annotations

import contextlib
import sys
import uuid
from typing import Any

import click
import msgspec

from kindred.bootstrap import Container
from kindred.cli.common import (
    chosen_workspace,
    config_option,
    data_dir_option,
    echo_json,
    started,
)
from kindred.domain.dsr import DSR_IDENTITY_TYPES, REQUEST_TYPES, DsrRequest
from kindred.domain.errors import KindredError, NotFound
from kindred.domain.receipts import ReceiptRecord
from kindred.wire.dsr import DOMAIN, DsrProblem, iso_time, parse_request, receipt_body

__all__ = ["dsr"]


@click.group()
def dsr() -> None:
    """Data subject requests: access, portability, erasure (OpenDSR)."""


def _shown(request: DsrRequest, container: Container) -> dict[str, Any]:
    shown: dict[str, Any] = msgspec.to_builtins(request)
    shown.pop("raw", None)
    if request.mpid is not None:
        shown["mpid"] = str(request.mpid)
    shown["expected_completion_time"] = iso_time(container.dsr.expected_ms(request))
    return shown


@dsr.command("list")
@click.option("--workspace", type=int, help="Only this workspace's requests (default: all).")
@click.option("--group", "group_id", help="Only the requests of this group_id.")
@click.option("--limit", type=int, default=100, show_default=True)
@config_option
@data_dir_option
def list_requests(
    workspace: int | None,
    group_id: str | None,
    limit: int,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """List requests, newest first."""
    with started(config_path, data_dir) as container:
        found = container.dsr.list(workspace, group_id, limit)
        echo_json([_shown(r, container) for r in found])


@dsr.command("show")
@click.argument("request_id")
@click.option("--workspace", type=int, help="The request's workspace (default: the first).")
@config_option
@data_dir_option
def show(
    request_id: str, workspace: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Show one request: its status, and what processing found or removed."""
    with started(config_path, data_dir) as container:
        ws = chosen_workspace(container, workspace)
        try:
            found = container.dsr.get(ws.workspace_id, request_id)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json(_shown(found, container))


@dsr.command("create")
@click.option("--type", "request_type", type=click.Choice(REQUEST_TYPES), required=True)
@click.option(
    "--identity",
    "identities",
    multiple=True,
    metavar="TYPE=VALUE",
    help=f"A subject identity, in OpenDSR's types ({', '.join(sorted(DSR_IDENTITY_TYPES))}).",
)
@click.option("--mpid", help="The subject's MPID (alone, instead of --identity).")
@click.option("--workspace", type=int, help="The workspace (default: the first).")
@click.option("--regulation", type=click.Choice(["gdpr", "ccpa"]), default="gdpr")
@click.option("--id", "request_id", help="The subject_request_id (default: a new UUID).")
@click.option("--group", "group_id", help="A group_id to list it by.")
@click.option("--skip-waiting-period", is_flag=True, help="Erasure: skip the waiting period.")
@config_option
@data_dir_option
def create(
    *,
    request_type: str,
    identities: tuple[str, ...],
    mpid: str | None,
    workspace: int | None,
    regulation: str,
    request_id: str | None,
    group_id: str | None,
    skip_waiting_period: bool,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Make a request, as the OpenDSR API does (processed by the servers, or `run-due`)."""
    subject: dict[str, dict[str, str]] = {}
    extension: dict[str, Any] = {"skip_waiting_period": skip_waiting_period}
    extended: dict[str, dict[str, str]] = {}
    for given in identities:
        id_type, sep, value = given.partition("=")
        if not sep:
            raise click.UsageError(f"--identity {given!r}: write TYPE=VALUE")
        top = id_type in DSR_IDENTITY_TYPES and not id_type.startswith(("other", "mobile", "phone"))
        (subject if top else extended)[id_type] = {"value": value, "encoding": "raw"}
    if mpid is not None:
        extended["mpid"] = {"value": mpid, "encoding": "raw"}
    if extended:
        extension["subject_identities"] = extended
    body: dict[str, Any] = {
        "regulation": regulation,
        "subject_request_id": request_id or str(uuid.uuid4()),
        "subject_request_type": request_type,
        "submitted_time": "",
        "api_version": "3.0",
        "subject_identities": subject,
        "extensions": {DOMAIN: extension},
    }
    if group_id:
        body["group_id"] = group_id
    with started(config_path, data_dir) as container:
        body["submitted_time"] = iso_time(container.clock.now_ms())
        raw = msgspec.json.encode(body)
        ws = chosen_workspace(container, workspace)
        try:
            made = container.dsr.create(ws, "cli", parse_request(raw), raw)
        except DsrProblem as problem:
            raise click.ClickException(str(problem)) from None
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json(_shown(made, container))


@dsr.command("cancel")
@click.argument("request_id")
@click.option("--workspace", type=int, help="The request's workspace (default: the first).")
@config_option
@data_dir_option
def cancel(
    request_id: str, workspace: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Cancel a pending request."""
    with started(config_path, data_dir) as container:
        ws = chosen_workspace(container, workspace)
        try:
            cancelled = container.dsr.cancel(ws.workspace_id, request_id)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json(_shown(cancelled, container))


@dsr.command("results")
@click.argument("request_id")
@click.option("--workspace", type=int, help="The request's workspace (default: the first).")
@config_option
@data_dir_option
def results(
    request_id: str, workspace: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Print the results of a completed access or portability request."""
    with started(config_path, data_dir) as container:
        ws = chosen_workspace(container, workspace)
        try:
            found = container.dsr.results(ws.workspace_id, request_id)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        sys.stdout.buffer.write(found.body)
        sys.stdout.buffer.flush()


@dsr.command("run-due")
@click.option(
    "--now", "request_id", help="Process this pending request now, whatever its due time."
)
@click.option("--workspace", type=int, help="With --now: the request's workspace.")
@config_option
@data_dir_option
def run_due(
    request_id: str | None, workspace: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Process the requests due now (safe beside running servers)."""
    with started(config_path, data_dir) as container:
        if request_id is None:
            echo_json(container.dsr.run_due())
            return
        ws = chosen_workspace(container, workspace)
        try:
            done = container.dsr.process(ws.workspace_id, request_id)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json(_shown(done, container))


def _receipt_of(container: Container, given: str, workspace: int | None) -> ReceiptRecord:
    """The receipt named by its id, or by its request's id (in --workspace, else in any)."""
    receipts = container.receipts
    with contextlib.suppress(NotFound):
        return receipts.get(given)
    workspaces = [workspace] if workspace is not None else list(container.tenancy.workspaces)
    for workspace_id in workspaces:
        with contextlib.suppress(NotFound):
            return container.dsr.receipt(workspace_id, given)
    raise click.ClickException(f"no receipt {given} (a receipt id, or a completed erasure's id)")


@dsr.command("receipt")
@click.argument("receipt_or_request_id")
@click.option("--workspace", type=int, help="The request's workspace (default: any).")
@config_option
@data_dir_option
def receipt(
    receipt_or_request_id: str,
    workspace: int | None,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Print an erasure's signed receipt (by receipt id, or by the request's id)."""
    with started(config_path, data_dir) as container:
        found = _receipt_of(container, receipt_or_request_id, workspace)
        echo_json(receipt_body(found.signed))


@dsr.command("receipts")
@click.option("--workspace", type=int, help="Only this workspace's (default: all).")
@click.option("--limit", type=int, default=100, show_default=True)
@config_option
@data_dir_option
def receipts(
    workspace: int | None, limit: int, config_path: str | None, data_dir: str | None
) -> None:
    """List erasure receipts (requests' and bulk deletions'), newest first."""
    with started(config_path, data_dir) as container:
        listed = []
        for record in container.receipts.list(workspace, limit):
            signed = record.signed.receipt()
            listed.append(
                {
                    "receipt_id": record.receipt_id,
                    "origin": signed.origin,
                    "request_id": signed.request_id,
                    "workspace_id": signed.workspace_id,
                    "erased_time": iso_time(signed.erased_ms),
                    "removed": {p.part: p.count for p in signed.parts if p.count},
                }
            )
        echo_json(listed)


@dsr.command("verify")
@click.argument("receipt_or_request_id")
@click.option("--workspace", type=int, help="The request's workspace (default: any).")
@config_option
@data_dir_option
def verify(
    receipt_or_request_id: str,
    workspace: int | None,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Check an erasure's receipt: its signature, and that nothing of the subject remains
    in the stores. Exit status 1 when either fails."""
    with started(config_path, data_dir) as container:
        found = _receipt_of(container, receipt_or_request_id, workspace)
        checked = container.receipts.verify(found.receipt_id)
        echo_json(checked)
        if not checked.ok:
            for problem in checked.problems:
                click.echo(f"verify failed: {problem}", err=True)
            sys.exit(1)
        click.echo(
            f"receipt {checked.receipt_id}: signature valid, nothing of the subject remains",
            err=True,
        )


@dsr.command("certificate")
@click.option(
    "--rotate",
    is_flag=True,
    help="Make a new processor key first (the old certificate stays trusted for receipts).",
)
@config_option
@data_dir_option
def certificate(rotate: bool, config_path: str | None, data_dir: str | None) -> None:
    """Print the processor certificate (PEM) that signs receipts and status callbacks."""
    with started(config_path, data_dir) as container:
        key = container.processor_key
        if rotate:
            try:
                key.rotate()
            except KindredError as exc:
                raise click.ClickException(str(exc)) from None
        click.echo(key.certificate, nl=False)
        click.echo(f"sha256 {key.fingerprint} ({key.where})", err=True)
