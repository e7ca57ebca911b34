"""event_notification."""
