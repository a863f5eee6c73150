"""The pure core: profiles, identities, source priority, change records. No I/O, no clock."""
