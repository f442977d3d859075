"""keyform: declare API keys in YAML, plan the change, apply it, sink the secrets."""

__version__ = "0.1.0"
