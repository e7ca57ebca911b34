"""HMI components: alert panel, scenario control."""
