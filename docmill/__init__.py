"""docmill: the contracts every package shares (settings, storage URIs, result schema,
model manifest) and the one CLI. Nothing here imports converter/, producer/ or worker/
except the CLI, lazily, per command."""

__version__ = "0.1.0"
