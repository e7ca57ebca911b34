"""manufacturing."""
