"""The work a server process repeats on a timer (services.background.Periodic), made from
its container: what runs where batches are applied (role all, or the workers), and the
estimator's refresh, which every role runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kindred.services.background import Periodic

if TYPE_CHECKING:
    from kindred.bootstrap.container import Container

__all__ = ["applying_jobs", "estimate_jobs"]


def applying_jobs(container: Container) -> list[Periodic]:
    """The jobs of a process that applies batches, not started: the retention sweep, the
    attribute expiry, the audiences' and calculated attributes' schedules and backfills,
    the data subject requests and the delivery's reconciliation; each whose interval is
    set."""
    settings = container.settings
    jobs: list[Periodic] = []
    interval = settings.retention.sweep_interval_s
    if interval > 0:
        # The first sweep soon after start, so that short-lived processes sweep too.
        first = min(interval, 60.0)
        jobs.append(Periodic("retention", interval, container.retention.run, first_after_s=first))
    expiry_every = settings.retention.expiry_interval_s
    if expiry_every > 0 and container.tenancy.attribute_ttls:
        # The first run soon after start: a rule just configured reaches the profiles
        # stored before it.
        first = min(expiry_every, 60.0)
        run = container.attribute_expiry.run
        jobs.append(Periodic("attribute-expiry", expiry_every, run, first_after_s=first))
    audiences = settings.audiences
    for name, every, task in (
        ("audience-schedule", audiences.schedule_interval_s, container.audience_schedule.run),
        ("audience-backfill", audiences.backfill_interval_s, container.audience_backfill.run),
        ("standard-audiences", audiences.backfill_interval_s, container.standard_audiences.run),
        ("audience-shadows", audiences.backfill_interval_s, container.audience_shadows.run),
        ("calculated-backfill", audiences.backfill_interval_s, container.calculated_backfill.run),
    ):
        if every > 0:
            # A backfill run that evaluated profiles is followed by the next at once: an
            # activation over a million profiles is fifty runs, not fifty runs and as many
            # waits.
            again_if = _evaluated_some if name == "audience-backfill" else None
            jobs.append(Periodic(name, every, task, again_if=again_if))
    dsr_every = settings.privacy.run_interval_s
    if dsr_every > 0:
        jobs.append(Periodic("dsr-requests", dsr_every, container.dsr.run_due))
    if settings.forwarding.deliver_in_server:
        jobs.append(Periodic("delivery-reconcile", 2.0, container.delivery.reconcile))
    return jobs


def estimate_jobs(container: Container) -> list[Periodic]:
    """The estimator's refresh, not started: its samples are read by the process whose UI
    and admin API answer estimates, in every role."""
    every = container.settings.audiences.estimate_refresh_s
    if every <= 0:
        return []
    # The first run at once: the samples are warm for the first estimates.
    refresh = container.estimates.refresh
    return [Periodic("audience-estimates", every, refresh, first_after_s=0.0)]


def _evaluated_some(result: object) -> bool:
    return isinstance(result, int) and result > 0
