"""Adapters implementing the ports: memory (reference), SQLite (embedded), PostgreSQL."""
