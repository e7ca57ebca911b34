"""HMI adapters: the digital twin adapter."""
