"""Reading profiles: the Profile API, profile queries, the event-log activity the UI shows, and
the lifetime sweep.
"""
