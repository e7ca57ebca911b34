"""HMI core: the interface manager and the interface state."""
