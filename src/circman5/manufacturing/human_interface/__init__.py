"""The human interface of the twin (technical manual 9): the interface manager, the digital
twin adapter, the HMI components and system diagnostics. The web HMI itself (pages, REST and
WebSocket API) lives in :mod:`circman5.api`."""
