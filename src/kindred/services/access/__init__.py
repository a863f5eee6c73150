"""Who may read: Profile API credentials and tokens, and the server's own keys."""
