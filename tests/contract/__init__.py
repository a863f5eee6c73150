"""One contract suite, run against every store."""
