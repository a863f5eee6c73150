"""IDSync calls and merges: the handlers of identify, login, logout, modify, alias and un-
merge, and the merge ledger's reads.
"""
