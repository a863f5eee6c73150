"""Forwarding: outputs and connections (catalog), the outbox rows a transaction adds (router,
transactions), delivery lanes and their admin.
"""
