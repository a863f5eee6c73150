"""HTTP adapter: thin handlers over the services, one error table."""
