"""digital_twin."""
