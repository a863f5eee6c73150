"""Calculated attributes (CA-1, CA-2), pure: definitions parsed and checked when saved,
the events they count, and seeds; the state arithmetic is in `kindred.domain.calculated`."""
