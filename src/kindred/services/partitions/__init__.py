"""Scale-out roles over the partitioned batch log: the API side appends, workers apply."""
