"""Several service nodes behind HAProxy, and the nginx caching tier (deploy/)."""
