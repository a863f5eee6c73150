"""The two ways every store saves a calculated attribute definition (CalculatedStore), on one
primitive each store writes: `_save_calculated(definition, cut_log=..., bump=...)`."""

from __future__ import annotations

from kindred.attributes.definition import CalculatedDef

__all__ = ["CalculatedSaves"]


class CalculatedSaves:
    def save_calculated(
        self, definition: CalculatedDef, *, progress: bool = False
    ) -> CalculatedDef:
        return self._save_calculated(definition, cut_log=False, bump=not progress)

    def activate_calculated(self, definition: CalculatedDef) -> CalculatedDef:
        return self._save_calculated(definition, cut_log=True, bump=True)

    def _save_calculated(
        self, definition: CalculatedDef, *, cut_log: bool, bump: bool
    ) -> CalculatedDef:
        """In one transaction: raise the definitions' version when `bump`, set
        `backfill_total` to the newest event log id when `cut_log`, insert or replace."""
        raise NotImplementedError
