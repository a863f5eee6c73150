"""Pure identity resolution: which profile a batch belongs to, and which identities it may link."""
