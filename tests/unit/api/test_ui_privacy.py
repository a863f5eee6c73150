"""The Privacy page's rendering: each request's status and what processing removed."""

from __future__ import annotations

from kindred.api.ui.layout import page
from kindred.api.ui.privacy import privacy_view
from kindred.domain.dsr import DsrRequest, DsrSummary


def _request(request_id: str, status: str, **fields: object) -> DsrRequest:
    return DsrRequest(
        workspace_id=1,
        request_id=request_id,
        input="server",
        scope="a1",
        regulation="gdpr",
        request_type="erasure",
        identities={"email": "<b>x@example.com</b>"},
        submitted_ms=1,
        received_ms=1_700_000_000_000,
        due_ms=1_700_000_000_000,
        status=status,
        **fields,  # type: ignore[arg-type]
    )


def _page(requests: list[DsrRequest], status: str) -> str:
    values = privacy_view(requests, {1: "Main"}, status)
    return str(page("privacy.html", "Privacy requests", user=None, values=values))


def test_an_erasure_shows_what_it_removed_and_values_are_escaped() -> None:
    done = _request(
        "r-1", "completed", summary=DsrSummary(profiles=1, events=3, outbox=2), completed_ms=5
    )
    waiting = _request("r-2", "pending")
    shown = _page([done, waiting], "")
    assert "<div>profiles: 1</div><div>events: 3</div><div>outbox: 2</div>" in shown
    assert "&lt;b&gt;x@example.com&lt;/b&gt;" in shown
    assert "<b>x@" not in shown
    assert '<span class="badge pending">pending</span>' in shown
    only_pending = _page([done, waiting], "pending")
    assert "r-2" in only_pending
    assert "r-1" not in only_pending
