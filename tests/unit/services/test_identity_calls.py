"""IDSync calls and merges through the writer's code path on the reference store:
no two profiles ever share a unique identity, an un-merge restores the earlier profiles
exactly, merged MPIDs keep working."""

from __future__ import annotations

from typing import TypeVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.domain.apply import identity_keys
from kindred.domain.errors import KindredError
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import Observation
from kindred.domain.profile import Profile
from kindred.domain.tenancy import (
    AccountPolicy,
    Guardrails,
    IdentityPolicy,
    InputDef,
    SourceType,
    WorkspaceDef,
)
from kindred.services.identity.idsync import IdentityCalls
from kindred.services.write_path import write_path
from kindred.services.writes.commands import (
    Accepted,
    AliasCall,
    AliasOutcome,
    BatchOutcome,
    Command,
    IdentityAnswer,
    IdentityCall,
    IdentityOutcome,
    ModifyCall,
    ModifyOutcome,
    UnmergeCall,
)
from kindred.storage.memory import MemoryStore
from kindred.wire.observe import observe
from tests.fakes import NullMetrics, SequentialMpids
from tests.strategies import profiles

NOW = 1_700_000_000_000
WORKSPACE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
WEB = InputDef(
    name="web", workspace=WORKSPACE, source_type=SourceType.WEB, api_key="k", api_secret=None
)
SCOPE = WORKSPACE.identity_scope
R = TypeVar("R")


class World:
    def __init__(self, source: InputDef = WEB) -> None:
        self.source = source
        self.store = MemoryStore()
        self.commands = write_path(self.store, SequentialMpids(), NullMetrics(), lambda _: source)
        self.now = NOW

    def run(self, command: Command[R]) -> R | KindredError:
        """The command's result, or its refusal."""
        self.now += 1_000
        (outcome,) = self.commands.apply([command])
        result: R | KindredError = outcome
        return result

    def call(
        self,
        kind: str,
        user: dict[str, str] | None = None,
        das: str | None = None,
        previous: int | None = None,
    ) -> IdentityAnswer:
        device = {"device_application_stamp": das} if das else {}
        obs = Observation(
            received_ms=self.now,
            effective_ms=self.now,
            user_identities=user or {},
            device_identities=device,
        )
        outcome = self.run(
            IdentityCall(kind=kind, input=self.source, observation=obs, previous_mpid=previous)  # type: ignore[arg-type]
        )
        assert isinstance(outcome, IdentityOutcome), outcome
        return outcome.answer

    def batch(self, mpid: int | None, **fields: object) -> BatchOutcome | KindredError:
        body = msgspec.json.encode(
            {"environment": "production", **({"mpid": str(mpid)} if mpid else {}), **fields}
        )
        return self.run(Accepted(self.source, observe(body, self.source, self.now), body))

    def modify(
        self, mpid: int, changes: list[tuple[str, str | None, str | None]]
    ) -> ModifyOutcome | KindredError:
        call = ModifyCall(
            input=self.source, target_mpid=mpid, changes=tuple(changes), received_ms=self.now
        )
        return self.run(call)

    def alias(
        self,
        source: int,
        destination: int,
        *,
        scope: str = SCOPE,
        start_ms: int = NOW,
        end_ms: int | None = None,
        max_merged: int = 20,
    ) -> AliasOutcome | KindredError:
        """An alias of `source` onto `destination` over `start_ms`..`end_ms` (now)."""
        return self.run(
            AliasCall(
                scope=scope,
                received_ms=self.now,
                source=source,
                destination=destination,
                start_ms=start_ms,
                end_ms=self.now if end_ms is None else end_ms,
                max_merged=max_merged,
            )
        )

    def store_links(self, profile: Profile) -> list[IdentityKey]:
        """The identities the index links to the profile's MPID."""
        keys = identity_keys(profile)
        return [k for k in keys if profile.mpid in self.store.find_profiles(SCOPE, k)]

    def profile(self, mpid: int) -> Profile:
        found = self.store.get_profile(mpid)
        assert found is not None
        return found


def test_login_converts_then_merges_the_next_anonymous_profile() -> None:
    world = World()
    anon = world.call("identify", das="d1").mpid
    assert world.call("login", {"customer_id": "c1"}, das="d1", previous=anon).mpid == anon
    other = world.call("identify", das="d2").mpid
    world.batch(other, user_attributes={"shoe": "blue"})
    answer = world.call("login", {"customer_id": "c1"}, das="d2", previous=other)
    assert (answer.mpid, answer.is_logged_in) == (anon, True)
    survivor = world.profile(anon)
    assert survivor.workspaces[1].attributes["shoe"].value == "blue"
    assert world.profile(other).merged_into == anon
    (entry,) = world.store.list_merges(None, 10)
    assert (entry.survivor, entry.merged, entry.rule) == (anon, other, "login")
    # The merged MPID still works: a batch naming it lands on the survivor.
    world.batch(other, user_attributes={"hat": "red"})
    assert world.profile(anon).workspaces[1].attributes["hat"].value == "red"


def test_an_unmerge_restores_both_profiles_and_re_applies_later_batches() -> None:
    world = World()
    known = world.call("identify", {"customer_id": "c1"}).mpid
    world.batch(known, user_attributes={"tier": "gold"})
    anon = world.call("identify", das="d9").mpid
    world.batch(anon, user_attributes={"color": "green"})
    before = {m: world.profile(m) for m in (known, anon)}
    world.call("login", {"customer_id": "c1"}, das="d9", previous=anon)
    world.batch(anon, user_attributes={"late": "yes"})  # after the merge, via the stub
    (entry,) = world.store.list_merges(None, 10)
    assert entry.id is not None
    outcome = world.run(UnmergeCall(scope=SCOPE, received_ms=NOW, merge_id=entry.id))
    assert not isinstance(outcome, KindredError)  # applied
    restored = {m: world.profile(m) for m in (known, anon)}
    assert restored[anon].merged_into is None
    assert "color" in restored[anon].workspaces[1].attributes
    assert "color" not in restored[known].workspaces[1].attributes
    assert restored[known].workspaces[1].attributes["tier"].value == "gold"
    # The batch sent after the merge named the anonymous MPID: it goes back there.
    assert restored[anon].workspaces[1].attributes["late"].value == "yes"
    assert "late" not in restored[known].workspaces[1].attributes
    # The anonymous profile has its device back (the login itself linked it to the known
    # profile too: that was the login, not the merge).
    linked = world.store.find_profiles(SCOPE, IdentityKey("device_application_stamp", "d9"))
    assert sorted(linked) == sorted([anon, known])
    assert {t: e.value for t, e in restored[known].user_identities.items()} == {
        t: e.value for t, e in before[known].user_identities.items()
    }
    assert world.store.get_merge(entry.id).unmerged_ms is not None  # type: ignore[union-attr]
    refused = world.run(UnmergeCall(scope=SCOPE, received_ms=NOW, merge_id=entry.id))
    assert isinstance(refused, KindredError)  # refused


def test_an_alias_moves_the_source_onto_the_destination() -> None:
    world = World()
    source = world.call("identify", das="s").mpid
    world.batch(source, user_attributes={"a": 1})
    destination = world.call("identify", {"customer_id": "c7"}).mpid
    outcome = world.alias(source, destination)
    assert not isinstance(outcome, KindredError)  # applied
    assert outcome.moved == 2  # identify + batch moved
    assert world.profile(destination).workspaces[1].attributes["a"].value == 1
    assert [e.mpid for e in world.store.log_for_profile(destination, 10)].count(destination) >= 2


@pytest.mark.parametrize(
    ("source", "destination", "start", "end", "reason"),
    [(1, 1, 0, 1, "same profile"), (1, 2, 5, 1, "before"), (1, 2, 0, 91 * 86_400_000, "90 days")],
)
def test_bad_aliases_are_refused(
    source: int, destination: int, start: int, end: int, reason: str
) -> None:
    world = World()
    world.call("identify", das="x")
    world.call("identify", {"customer_id": "c"})
    outcome = world.alias(source, destination, start_ms=start, end_ms=end)
    assert isinstance(outcome, KindredError)  # refused
    assert reason in str(outcome)


def test_an_alias_answers_another_scopes_profile_as_an_unknown_mpid() -> None:
    world = World()
    ours = world.call("identify", das="ours").mpid
    theirs = world.call("identify", {"customer_id": "theirs"}).mpid

    def alias(scope: str, source: int, destination: int) -> str:
        outcome = world.alias(source, destination, scope=scope)
        assert isinstance(outcome, KindredError)  # refused
        return f"{type(outcome).__name__}: {outcome}"

    unknown = 987_654_321
    # Called for another identity scope, both profiles are as good as unknown there.
    assert alias("elsewhere", ours, theirs) == alias("elsewhere", unknown, theirs)
    assert alias("elsewhere", theirs, ours) == alias("elsewhere", unknown, ours)
    assert "NotFound" in alias("elsewhere", ours, theirs)
    assert world.profile(ours).merged_into is None


Step = tuple[str, str, str, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(["identify", "login", "logout", "batch", "modify"]),
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from(["d1", "d2"]),
        st.integers(0, 5),
    ),
    max_size=12,
)


LINK = InputDef(
    name="web",
    workspace=WorkspaceDef(
        workspace_id=1,
        name="w",
        account=AccountPolicy(
            account_id=1,
            identity=IdentityPolicy(
                strategy="profile_link",
                unique=frozenset({"customer_id", "email"}),
                login=frozenset({"customer_id", "email"}),
            ),
        ),
    ),
    source_type=SourceType.WEB,
    api_key="k",
    api_secret=None,
)


@pytest.mark.parametrize("source", [WEB, LINK], ids=["default", "profile_link"])
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(script=steps)
def test_no_two_profiles_ever_share_a_unique_identity(source: InputDef, script: list[Step]) -> None:
    world = World(source)
    seen: list[int] = []
    for kind, customer, das, pick in script:
        previous = seen[pick % len(seen)] if seen else None
        outcome: BatchOutcome | ModifyOutcome | KindredError
        if kind == "batch":
            outcome = world.batch(
                previous, user_identities={"customer_id": customer}, mp_deviceid=das
            )
        elif kind == "modify":
            if previous is None:
                continue
            outcome = world.modify(previous, [("email", None, f"{customer}@x")])
        else:
            answer = world.call(kind, {"customer_id": customer}, das=das, previous=previous)
            seen.append(answer.mpid)
            continue
        if not isinstance(outcome, KindredError) and outcome.mpid is not None:
            seen.append(outcome.mpid)
    live = [p for p in world.store._state.profiles.values() if p.merged_into is None]
    for id_type in source.workspace.account.identity.unique:
        values = [p.user_identities[id_type].value for p in live if id_type in p.user_identities]
        assert len(values) == len(set(values)), (id_type, values)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(a=profiles(mpid=101), b=profiles(mpid=202))
def test_an_unmerge_after_a_merge_restores_the_profiles_exactly(a: Profile, b: Profile) -> None:
    world = World()
    a, b = (msgspec.structs.replace(p, scope=SCOPE, version=1) for p in (a, b))
    with world.store.unit_of_work() as uow:
        for profile in (a, b):
            uow.profiles.save(profile)
            uow.identities.link(SCOPE, profile.mpid, identity_keys(profile))
    index_before = {p.mpid: sorted(world.store_links(p)) for p in (a, b)}
    merged = world.alias(202, 101, start_ms=NOW - 86_400_000, end_ms=NOW)
    assert not isinstance(merged, KindredError), merged  # applied
    (entry,) = world.store.list_merges(None, 1)
    assert entry.id is not None
    undone = world.run(UnmergeCall(scope=SCOPE, received_ms=NOW, merge_id=entry.id))
    assert not isinstance(undone, KindredError), undone  # applied
    for original in (a, b):
        restored = world.profile(original.mpid)
        assert restored == msgspec.structs.replace(original, version=3)
        assert sorted(world.store_links(original)) == index_before[original.mpid]


def capped(limit: int) -> InputDef:
    account = AccountPolicy(account_id=1, guardrails=Guardrails(max_profiles_merged=limit))
    workspace = WorkspaceDef(workspace_id=1, name="w", account=account)
    return InputDef(
        name="web", workspace=workspace, source_type=SourceType.WEB, api_key="k", api_secret=None
    )


def test_a_profile_absorbs_no_more_than_its_cap_of_profiles() -> None:
    world = World(capped(1))
    known = world.call("identify", {"customer_id": "c1"}).mpid
    first = world.call("identify", das="d1").mpid
    world.call("login", {"customer_id": "c1"}, das="d1", previous=first)
    assert world.profile(first).merged_into == known
    second = world.call("identify", das="d2").mpid
    call = IdentityCall(
        kind="login",
        input=world.source,
        observation=Observation(
            received_ms=world.now,
            effective_ms=world.now,
            user_identities={"customer_id": "c1"},
            device_identities={"device_application_stamp": "d2"},
        ),
        previous_mpid=second,
    )
    outcome = world.run(call)
    # The login stands; the merge is refused and noted (counted as refused data).
    assert isinstance(outcome, IdentityOutcome)
    assert outcome.answer.mpid == known
    assert [n.reason for n in outcome.notes] == ["merge_cap"]
    assert world.profile(second).merged_into is None
    assert world.profile(known).absorbed == 1
    alias = world.alias(second, known, max_merged=1)
    assert isinstance(alias, KindredError)  # refused
    assert "merge_cap" in str(alias)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=steps,
    probe=st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["d1", "d2", None])),
)
def test_the_known_user_shortcut_answers_as_the_full_resolution(
    script: list[Step], probe: tuple[str, str | None]
) -> None:
    world = World()
    seen: list[int] = []
    for kind, customer, das, pick in script:
        previous = seen[pick % len(seen)] if seen else None
        if kind in ("identify", "login", "logout"):
            seen.append(
                world.call(kind, {"customer_id": customer}, das=das, previous=previous).mpid
            )
    probe_customer, probe_das = probe
    device = {"device_application_stamp": probe_das} if probe_das else {}
    call = IdentityCall(
        kind="identify",
        input=WEB,
        observation=Observation(
            received_ms=world.now,
            effective_ms=world.now,
            user_identities={"customer_id": probe_customer},
            device_identities=device,
        ),
    )
    calls = IdentityCalls(world.store)
    fast = calls.read_only(call)
    slow_calls = IdentityCalls(world.store)
    slow_calls._known_user = lambda _call: None  # type: ignore[method-assign, assignment]
    slow = slow_calls.read_only(call)
    assert (fast is None) == (slow is None)
    if fast is not None and slow is not None:
        assert (fast.mpid, fast.matched, fast.is_logged_in) == (
            slow.mpid,
            slow.matched,
            slow.is_logged_in,
        )


OTHER_ACCOUNT = InputDef(
    name="other",
    workspace=WorkspaceDef(workspace_id=2, name="o", account=AccountPolicy(account_id=2)),
    source_type=SourceType.WEB,
    api_key="o",
    api_secret=None,
)


@pytest.mark.parametrize("check_first", [True, False])
def test_a_modify_from_another_identity_scope_is_answered_as_an_unknown_mpid(
    check_first: bool,
) -> None:
    world = World()
    mpid = world.call("identify", {"customerid": "c1"}).mpid
    foreign = ModifyCall(
        input=OTHER_ACCOUNT,
        target_mpid=mpid,
        changes=(("email", None, "attacker@example.com"),),
        received_ms=world.now,
    )
    unknown_call = ModifyCall(
        input=OTHER_ACCOUNT, target_mpid=mpid + 999, changes=foreign.changes, received_ms=world.now
    )
    if check_first:
        calls = IdentityCalls(world.store)
        refusals = []
        for call in (foreign, unknown_call):
            with pytest.raises(KindredError) as refused:
                calls.check_modify(call)
            refusals.append(
                (type(refused.value), str(refused.value).replace(str(call.target_mpid), "N"))
            )
        assert refusals[0] == refusals[1]
    else:
        outcome = world.run(foreign)
        assert isinstance(outcome, KindredError)
        other = world.run(unknown_call)
        assert type(outcome) is type(other)
        assert str(outcome).replace(str(mpid), "N") == str(other).replace(str(mpid + 999), "N")
    assert "email" not in world.profile(mpid).user_identities


def test_a_batch_naming_another_scopes_mpid_lands_in_its_own_scope() -> None:
    """docs/security.md: the MPID is set aside; the batch resolves by its identities in
    the caller's scope, or makes a profile of its own there, and the other scope's
    profile is not touched."""
    world = World()
    theirs = world.call("identify", {"customerid": "c1"}).mpid
    before = world.profile(theirs)
    own_scope = OTHER_ACCOUNT.workspace.identity_scope

    def batch(**fields: object) -> BatchOutcome:
        body = msgspec.json.encode({"environment": "production", "mpid": str(theirs), **fields})
        outcome = world.run(Accepted(OTHER_ACCOUNT, observe(body, OTHER_ACCOUNT, world.now), body))
        assert isinstance(outcome, BatchOutcome), outcome
        return outcome

    named = batch(user_identities={"customerid": "o1"}, user_attributes={"x": 1})
    again = batch(user_identities={"customerid": "o1"}, user_attributes={"x": 2})
    bare = batch(user_attributes={"y": 3})
    assert [o.status for o in (named, again, bare)] == ["applied"] * 3
    assert named.mpid == again.mpid  # found again by its identity, in its own scope
    assert bare.mpid not in (theirs, named.mpid, None)
    for mpid in (named.mpid, bare.mpid):
        assert mpid is not None
        assert world.profile(mpid).scope == own_scope
    assert world.profile(named.mpid).workspaces[2].attributes["x"].value == 2  # type: ignore[arg-type]
    assert world.profile(theirs) == before
