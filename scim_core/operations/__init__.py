"""Operating the deployment: tenants' lifecycle and tokens, and the change feed's retention.
Above the store and the secret stores, which these drive (docs/architecture.md, "Layers")."""
