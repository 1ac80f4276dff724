"""The platform both draft services run on: config, store, auth, errors, server."""
