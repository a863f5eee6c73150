"""Reading the merge ledger (IDS-5, IDS-6) for operators: the CLI's `identity merges`, the
admin API's merge list, and the merge an un-merge names (its identity scope decides which
writer call undoes it). Writing the ledger is `services.merges`' part, inside ingest's
units of work."""

from __future__ import annotations

from kindred.domain.errors import NotFound
from kindred.ports import MergeEntry, MergeReader
from kindred.services.merges import ledger_row

__all__ = ["MergeLedger"]


class MergeLedger:
    def __init__(self, store: MergeReader) -> None:
        self._store = store

    def rows(self, mpid: int | None, limit: int) -> list[dict[str, object]]:
        """Ledger entries as operators see them (`ledger_row`), newest first; with an MPID,
        only the merges it took part in."""
        return [ledger_row(e) for e in self._store.list_merges(mpid, limit)]

    def get(self, merge_id: int) -> MergeEntry:
        """The entry of a merge; NotFound when there is none."""
        entry = self._store.get_merge(merge_id)
        if entry is None:
            raise NotFound(f"no merge {merge_id}")
        return entry
