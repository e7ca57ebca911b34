"""Configuration adapter base classes and the configuration manager."""
