"""The application layer: orchestration and transactions over the ports; no SQL, no HTTP."""
