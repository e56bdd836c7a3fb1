"""Standard panels."""
