"""Data subject requests (RET-3): the requests and their processing (requests.py), who a
subject is (subjects.py), erasure from every store (erasure.py), and the subject's data for
access and portability (exports.py)."""
