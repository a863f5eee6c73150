"""The web UI's profile page shows, beside each audience membership, the profile's A/B test
variation in that audience (AUD-8), escaped like everything users can name."""

from __future__ import annotations

from kindred.api.ui.profiles import profile_body
from tests.unit.api.test_ui_rendering import _profile, _timeline

__all__: list[str] = []


def test_a_membership_shows_the_profiles_variation() -> None:
    markup = profile_body(
        _profile(),
        expired=False,
        workspace_names={},
        timeline=_timeline(),
        event_type=None,
        variations={7: "<i>Email</i>", 99: "Push"},
    )
    assert "A/B variation" in markup
    assert "<td>&lt;i&gt;Email&lt;/i&gt;</td>" in markup
    assert "Push" not in markup  # not a member of audience 99


def test_without_a_test_the_variation_is_a_dash() -> None:
    markup = profile_body(
        _profile(), expired=False, workspace_names={}, timeline=_timeline(), event_type=None
    )
    assert "A/B variation" in markup
    assert "Email" not in markup
