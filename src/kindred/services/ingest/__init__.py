"""Batches into profiles: the handlers of accepted and refused batches, one batch applied to
its profile, and the sources that replay batches (CSV import, quarantine, rebuild).
"""
