"""The Platform API's audience list (reference §7): audiences as mParticle's
`GET /v1/audiences` lists them, for a credential with the platform scope, limited to the
workspaces the credential covers: an audience spanning a workspace it does not cover is
none of its own (its size counts that workspace's members, its deletion would end it
there too); definitions (criteria) are not shown there."""

from __future__ import annotations

from datetime import UTC, datetime

from kindred.audiences.definition import AudienceDef
from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import AuthRejected, InvalidBatch, NotFound
from kindred.domain.tenancy import Tenancy
from kindred.services.audiences.admin import AudienceService
from kindred.services.forwarding.catalog import OutputCatalog

__all__ = ["PLATFORM_SCOPE", "PlatformAudiences"]

PLATFORM_SCOPE = "platform"


class PlatformAudiences:
    def __init__(
        self, audiences: AudienceService, catalog: OutputCatalog, tenancy: Tenancy
    ) -> None:
        self._audiences = audiences
        self._catalog = catalog
        self._tenancy = tenancy

    def of_account(self, credential: ApiCredential, account_id: int | None) -> list[object]:
        """`GET /v1/audiences?accountId=N`: the account's audiences the credential sees."""
        if account_id is None:
            raise InvalidBatch("accountId is required", "accountId")
        account = self._covered(credential) & self._account_workspaces(account_id)
        if not account:
            raise AuthRejected(
                f"credential {credential.client_id} covers no workspace of account {account_id}"
            )
        return self._items(account, self._covered(credential))

    def of_workspace(self, credential: ApiCredential, workspace_id: int) -> list[object]:
        """`GET /v1/workspace/{id}/audiences`."""
        if workspace_id not in self._covered(credential):
            raise AuthRejected(
                f"credential {credential.client_id} has no access to workspace {workspace_id}"
            )
        return self._items({workspace_id}, self._covered(credential))

    def delete(self, credential: ApiCredential, audience_id: int) -> None:
        """`DELETE /v1/audiences/{id}`; an audience the credential cannot see is answered
        as one that does not exist."""
        audience = next(
            (a for a in self._audiences.all() if a.id == audience_id),
            None,
        )
        if audience is None or not _within(audience, self._covered(credential)):
            raise NotFound(f"no audience {audience_id}")
        self._audiences.delete(audience_id, changed_by=f"platform api {credential.client_id}")

    def _covered(self, credential: ApiCredential) -> set[int]:
        self._check_scope(credential)
        return {w for w in credential.workspaces if w in self._tenancy.workspaces}

    @staticmethod
    def _check_scope(credential: ApiCredential) -> None:
        if PLATFORM_SCOPE not in credential.scopes:
            raise AuthRejected(
                f"credential {credential.client_id} lacks the {PLATFORM_SCOPE!r} scope"
            )

    def _account_workspaces(self, account_id: int) -> set[int]:
        return {
            w.workspace_id
            for w in self._tenancy.workspaces.values()
            if w.account.account_id == account_id
        }

    def _items(self, workspaces: set[int], covered: set[int]) -> list[object]:
        """The audiences in any of `workspaces` spanning only workspaces `covered`."""
        return [
            self._item(a)
            for a in self._audiences.all()
            if set(a.workspaces) & workspaces and _within(a, covered)
        ]

    def _item(self, audience: AudienceDef) -> dict[str, object]:
        metrics = self._audiences.metrics(audience.id)
        current = self._catalog.current()
        kinds = {o.name: o.kind for o in current.outputs}
        by_output: dict[str, list[dict[str, str]]] = {}
        for connection in current.audience_connections:
            if connection.audience_id == audience.id:
                by_output.setdefault(connection.output, []).append({"name": connection.name})
        return {
            "name": audience.name,
            "external_name": audience.external_name,
            "id": audience.id,
            "size": metrics.size,
            "created_by": audience.created_by,
            "last_modified_by": audience.updated_by or audience.created_by,
            "last_modified_on": _iso(audience.updated_ms or audience.created_ms),
            "is_calculated": audience.status == "active" and not metrics.backfill_running,
            "added_last_24_hours": metrics.adds_24h,
            "dropped_last_24_hours": metrics.drops_24h,
            "status": audience.status,
            "workspaces": [
                {
                    "name": self._tenancy.workspaces[w].name,
                    "id": w,
                    "data_type": "workspace",
                    "created_on": None,
                }
                for w in audience.workspaces
                if w in self._tenancy.workspaces
            ],
            "connected_outputs": [
                {
                    "provider_name": kinds.get(output, output),
                    "configurations": configurations,
                    "data_type": "audience_output",
                }
                for output, configurations in sorted(by_output.items())
            ],
            "data_type": "audience",
        }


def _within(audience: AudienceDef, covered: set[int]) -> bool:
    return bool(audience.workspaces) and set(audience.workspaces) <= covered


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
