"""Hypothesis settings for the whole suite: no time limits. Timing checks say nothing about
behaviour and fail at random on a loaded two-core machine; what a property checks stays."""

from hypothesis import HealthCheck, settings

settings.register_profile("kindred", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kindred")
