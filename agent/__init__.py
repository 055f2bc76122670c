"""selfbox agents."""
