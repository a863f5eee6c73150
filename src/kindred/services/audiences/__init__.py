"""Real-time audiences: the registry of compiled audiences, definitions and history (admin),
the scheduler and the backfill (jobs).
"""
