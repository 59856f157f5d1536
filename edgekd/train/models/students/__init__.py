"""Student architectures: small enough for a board (KWS: at most ~25k parameters)."""
