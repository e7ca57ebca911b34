"""Tests of the REST/WebSocket API, the web HMI backend and the human interface objects."""
