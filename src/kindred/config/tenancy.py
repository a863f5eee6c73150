"""The settings' tenancy as the domain's values: accounts with their identity policies,
workspaces and inputs, identity type names made canonical and each strategy's defaults
filled in. The domain never sees config types; this translation (no I/O) is the one place
that reads both.
"""

from __future__ import annotations

from kindred.config import AccountSettings, InputSettings, Settings
from kindred.domain.errors import ConfigError
from kindred.domain.expiry import TtlRules, parse_rules
from kindred.domain.identities import DEFAULT_BLOCKLIST, DEFAULT_PRIORITY, canonical_identity_type
from kindred.domain.tenancy import (
    AccountPolicy,
    IdentityPolicy,
    InputDef,
    Protection,
    SourceType,
    Tenancy,
    WorkspaceDef,
)

__all__ = ["tenancy_from"]


def tenancy_from(settings: Settings) -> Tenancy:
    """The org's workspaces and inputs (by API key and by name); ConfigError naming the key
    of an unknown identity type."""
    workspaces: dict[int, WorkspaceDef] = {}
    inputs: list[InputDef] = []
    ttls: dict[int, TtlRules] = {}
    for a, account in enumerate(settings.accounts):
        policy = _account_policy(account)
        for w, ws in enumerate(account.workspaces):
            workspace = WorkspaceDef(workspace_id=ws.id, name=ws.name, account=policy)
            workspaces[ws.id] = workspace
            if ws.attribute_ttl:
                where = f"accounts[{a}].workspaces[{w}].attribute_ttl"
                ttls[ws.id] = parse_rules(ws.attribute_ttl, where)
            inputs.extend(_input(i, workspace) for i in ws.inputs)
    return Tenancy(
        org_id=settings.org.id,
        workspaces=workspaces,
        inputs_by_key={i.api_key: i for i in inputs},
        inputs_by_name={i.name: i for i in inputs},
        attribute_ttls=ttls,
    )


def _account_policy(account: AccountSettings) -> AccountPolicy:
    ident = account.identity
    where = f"accounts[id={account.id}].identity"
    priority = tuple(_types(ident.priority, f"{where}.priority")) if ident.priority else None
    immutable = _types([ident.immutable], f"{where}.immutable")[0] if ident.immutable else None
    if ident.strategy == "best_match":
        immutable = None  # best match has no login, unique or immutable identities
    return AccountPolicy(
        account_id=account.id,
        identity_scope=account.identity_scope,
        identity=IdentityPolicy(
            strategy=ident.strategy,
            priority=priority or DEFAULT_PRIORITY,
            unique=frozenset(_types(_or(ident.unique, ident.strategy), f"{where}.unique")),
            login=frozenset(_types(_or(ident.login, ident.strategy), f"{where}.login")),
            merge_anonymous_on_login=ident.merge_anonymous_on_login,
            immutable=immutable,
            blocklist=DEFAULT_BLOCKLIST | {v.strip().lower() for v in ident.blocklist_extra},
            max_profiles_per_identity={
                _types([k], f"{where}.max_profiles_per_identity")[0]: v
                for k, v in ident.max_profiles_per_identity.items()
            },
        ),
        guardrails=account.guardrails,
        retention_days=account.retention_days,
        profile_lifetime_days=(
            account.retention_days if account.lifetime_profiles else account.profile_lifetime_days
        ),
        lifetime_profiles=account.lifetime_profiles,
    )


def _or(configured: list[str] | None, strategy: str) -> list[str]:
    """Unique and login identities: as configured, else the strategy's (reference §2.6)."""
    if configured is not None:
        return configured
    return list(_STRATEGY_IDENTITIES.get(strategy, ("customer_id",)))


_STRATEGY_IDENTITIES: dict[str, tuple[str, ...]] = {
    "profile_link": ("customer_id", "email"),
    "profile_isolation": ("customer_id", "email"),
    "best_match": (),
}


def _types(names: list[str], key: str) -> list[str]:
    result = []
    for name in names:
        canonical = canonical_identity_type(name)
        if canonical is None:
            raise ConfigError(f"{key}: unknown identity type {name!r}")
        result.append(canonical)
    return result


def _input(inp: InputSettings, workspace: WorkspaceDef) -> InputDef:
    return InputDef(
        name=inp.name,
        workspace=workspace,
        source_type=SourceType(inp.source_type),
        api_key=inp.api_key,
        api_secret=inp.api_secret,
        protection=Protection(inp.protection),
        rate_limit_per_s=inp.rate_limit_per_s,
        rate_limit_burst=inp.rate_limit_burst,
        account_attributes=inp.account_attributes,
    )
