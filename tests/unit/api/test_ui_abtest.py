"""The web UI's profile page shows, beside each audience membership, the profile's A/B test
variation in that audience (AUD-8), escaped like everything users can name."""

from __future__ import annotations

from tests.unit.api.test_ui_rendering import _profile, _profile_page

__all__: list[str] = []


def test_a_membership_shows_the_profiles_variation() -> None:
    markup = _profile_page(
        _profile(), expired=False, names={}, variations={7: "<i>Email</i>", 99: "Push"}
    )
    assert "A/B variation" in markup
    assert "<td>&lt;i&gt;Email&lt;/i&gt;</td>" in markup
    assert "Push" not in markup  # not a member of audience 99


def test_without_a_test_the_variation_is_a_dash() -> None:
    markup = _profile_page(_profile(), expired=False, names={})
    assert "A/B variation" in markup
    assert "Email" not in markup
