"""human_interface."""
