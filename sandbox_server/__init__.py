"""selfbox sandbox server."""
