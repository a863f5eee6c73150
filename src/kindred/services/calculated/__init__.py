"""Calculated attributes: the registry of active definitions, definitions and seeds (admin),
the computation over the event log (jobs).
"""
