"""mParticle wire schema as msgspec Structs: decoded once at the edge, never re-parsed."""
