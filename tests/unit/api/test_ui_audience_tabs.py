"""The audience tabs' pure parts: the A/B form's rows and the control's share the server
computes, and the list's metrics read for audiences already read (the same as one by one)."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kindred.api.ui.audience_tabs import TABS, control_share, variation_rows
from kindred.api.ui.charts import size_steps_chart
from kindred.api.ui.layout import page
from kindred.api.ui.session import Visitor
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.domain.users import Role
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.estimates import AudienceEstimate
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.storage.memory import MemoryStore
from tests.fakes import FakeClock
from tests.unit.services.test_audience_membership import NOW, TENANCY

DAY_MS = 86_400_000

shares = st.lists(
    st.tuples(st.text(max_size=5), st.one_of(st.integers(0, 150).map(str), st.text(max_size=3))),
    max_size=5,
)


@given(shares)
def test_the_control_takes_what_whole_percentages_leave(pairs: list[tuple[str, str]]) -> None:
    rows = variation_rows(pairs)
    assert len(rows) == 5
    assert [(r.name, r.percentage) for r in rows[: len(pairs)]] == pairs
    assert all(not r.name and not r.percentage for r in rows[len(pairs) :])
    written = [p.strip() for _, p in pairs]
    whole = sum(int(p) for p in written if p.isascii() and p.isdigit())
    assert control_share(rows) == 100 - whole


def test_40_40_leaves_20_and_over_100_goes_below_zero() -> None:
    assert control_share(variation_rows([("A", "40"), ("B", "40")])) == 20
    assert control_share(variation_rows([("A", "40"), ("B", "70")])) == -10
    assert control_share(variation_rows([("A", "forty")])) == 100
    assert control_share(variation_rows([("A", "²"), ("B", "9" * 5000)])) == 100


def test_the_metrics_of_audiences_read_are_those_read_one_by_one() -> None:
    store = MemoryStore()
    clock = FakeClock(NOW)
    service = AudienceService(store, Transactions(store), AudienceRegistry(store, TENANCY), clock)
    made = [
        service.create(
            AudienceDef(
                name=f"A{n}",
                workspaces=[1],
                criteria={"attribute": "tier", "op": "equals", "value": "gold"},
            )
        )
        for n in range(3)
    ]
    with store.unit_of_work() as uow:
        uow.memberships.append(
            [
                MembershipChange(
                    audience_id=a.id,
                    mpid=10 * n + (0 if m == 3 else m),  # the fourth: the first leaves
                    entered=m != 3,
                    at_ms=NOW - (2 * DAY_MS if m == 0 else DAY_MS // 2),
                    reason="test",
                )
                for n, a in enumerate(made)
                for m in range(n + 2)
            ]
        )
    listed = service.metrics_of(service.all())
    assert [msgspec.to_builtins(m) for m in listed] == [
        msgspec.to_builtins(service.metrics(a.id)) for a in made
    ]
    assert [m.size for m in listed] == [2, 3, 2]
    assert [m.adds_24h for m in listed] == [1, 2, 2]
    assert [m.drops_24h for m in listed] == [0, 0, 1]


def _overview(estimate: object) -> str:
    audience = AudienceDef(id=7, name="Gold", workspaces=[1], criteria={"attribute": "t"})
    values = {
        "audience": audience,
        "tabs": TABS,
        "tab": "overview",
        "base_path": "/ui/audiences/7",
        "may_change": False,
        "may_use": False,
        "facts": [("Size", 0)],
        "size_chart": size_steps_chart([], NOW, "Audience size over time"),
        "estimate": estimate,
    }
    viewer = Visitor(name="vic", csrf="tok", role=Role.VIEWER)
    return str(page("audience.html", "Gold", user=viewer, active="audiences", values=values))


def test_the_overview_flags_the_estimate_until_the_calculation_completes() -> None:
    estimate = AudienceEstimate(
        audience_id=7,
        estimate=12300,
        shown="12,300",
        low=11000,
        high=13600,
        exact=False,
        sampled_members=123,
        sample_size=2500,
        samples=[],
        criteria=[],
        estimated_ms=NOW,
    )
    markup = _overview(estimate)
    assert 'id="estimate"' in markup
    assert "Estimated size: <strong>12,300</strong> (95%: 11000 to 13600)" in markup
    assert "shown until the audience's calculation completes" in markup
    assert 'aria-current="page">Overview</a>' in markup
    assert "<form" not in markup.split("<main", 1)[1]  # a viewer: no forms
    assert 'id="estimate"' not in _overview(None)
