"""Model calls: the only door to litellm (client), its retries, error classification and replay cache."""
