"""Integration of the twin with the AI optimization (``ai_integration.AIIntegration``) and the
life-cycle assessment (``lca_integration.LCAIntegration``)."""
