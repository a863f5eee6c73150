"""Outputs and connections: checked when declared or saved, errors naming what is wrong;
run-time definitions kept in the store beside the config file's."""

from __future__ import annotations

import msgspec
import pytest

from kindred.domain.errors import ConfigError, NotFound
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.services.forwarding.catalog import OutputCatalog, OutputsAndConnections
from kindred.storage.memory import MemoryStore

WORKSPACE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
SERVER = InputDef(
    name="s", workspace=WORKSPACE, source_type=SourceType.SERVER, api_key="k", api_secret="x"
)
TENANCY = Tenancy(
    org_id=1, workspaces={1: WORKSPACE}, inputs_by_key={"k": SERVER}, inputs_by_name={"s": SERVER}
)
HOOK = OutputDef(name="hook", kind="webhook", url="http://127.0.0.1:9/x")


def catalog(defs: OutputsAndConnections) -> OutputCatalog:
    return OutputCatalog(MemoryStore(), TENANCY, defs)


@pytest.mark.parametrize(
    ("defs", "message"),
    [
        (OutputsAndConnections(outputs=[OutputDef(name="h", kind="webhook")]), "outputs['h'].url"),
        (
            OutputsAndConnections(outputs=[OutputDef(name="h", kind="webhook", url="ftp://x")]),
            "must start with http",
        ),
        (
            OutputsAndConnections(outputs=[OutputDef(name="f", kind="jsonl")]),
            "outputs['f'].directory",
        ),
        (
            OutputsAndConnections(outputs=[OutputDef(name="n", kind="nats", url="nats://x")]),
            "outputs['n'].subject",
        ),
        (
            OutputsAndConnections(
                outputs=[HOOK, msgspec.structs.replace(HOOK, auth_header="Bearer x")]
            ),
            "auth_header",
        ),
        (OutputsAndConnections(outputs=[HOOK, HOOK]), "outputs[].name: 'hook' is used twice"),
        (
            OutputsAndConnections(
                outputs=[HOOK],
                event_connections=[EventConnection(name="c", input="nope", output="hook")],
            ),
            "event_connections['c'].input: no input named 'nope'",
        ),
        (
            OutputsAndConnections(
                outputs=[HOOK],
                event_connections=[EventConnection(name="c", input="s", output="gone")],
            ),
            "event_connections['c'].output: no output named 'gone'",
        ),
        (
            OutputsAndConnections(
                outputs=[HOOK],
                audience_connections=[
                    AudienceConnection(
                        name="a", audience_id=1, output="hook", identity_types=["shoe_size"]
                    )
                ],
            ),
            "unknown identity type 'shoe_size'",
        ),
        (
            OutputsAndConnections(
                outputs=[HOOK],
                event_connections=[EventConnection(name="c", input="s", output="hook")],
                audience_connections=[
                    AudienceConnection(
                        name="c", audience_id=1, output="hook", identity_types=["email"]
                    )
                ],
            ),
            "connections[].name: 'c' is used twice",
        ),
        (
            OutputsAndConnections(outputs=[msgspec.structs.replace(HOOK, name="new")]),
            "'new' is reserved",
        ),
        (
            OutputsAndConnections(
                outputs=[HOOK],
                event_connections=[EventConnection(name="new", input="s", output="hook")],
            ),
            "'new' is reserved",
        ),
    ],
)
def test_bad_definitions_are_refused_naming_the_key(
    defs: OutputsAndConnections, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        catalog(defs)


def test_declared_identity_types_are_made_canonical() -> None:
    connection = AudienceConnection(
        name="a", audience_id=1, output="hook", identity_types=["customerid", "IOS_IDFA"]
    )
    c = catalog(OutputsAndConnections(outputs=[HOOK], audience_connections=[connection]))
    (found,) = c.current().audience_connections
    assert found.identity_types == ["customer_id", "ios_advertising_id"]


def test_run_time_definitions_join_the_declared_ones() -> None:
    c = catalog(OutputsAndConnections(outputs=[HOOK]))
    saved = c.save(
        "audience_connection",
        b'{"name":"a","audience_id":2,"output":"hook","identity_types":["ios_idfa"]}',
    )
    assert isinstance(saved, AudienceConnection)
    assert saved.identity_types == ["ios_advertising_id"]
    assert [a.name for a in c.current().audience_connections] == ["a"]
    with pytest.raises(ConfigError, match="declared in the config file"):
        c.save("output", b'{"name":"hook","kind":"jsonl","directory":"/tmp"}')
    with pytest.raises(ConfigError, match="unknown field"):
        c.save("output", b'{"name":"x","kind":"jsonl","directry":"/tmp"}')
    with pytest.raises(ConfigError, match="declared in the config file"):
        c.delete("output", "hook")
    c.delete("audience_connection", "a")
    assert c.current().audience_connections == []
    with pytest.raises(NotFound):
        c.delete("audience_connection", "a")
