"""The relay service: upstream primary → store."""

from binhub.relay.relay import Relay, RelayFatal

__all__ = ["Relay", "RelayFatal"]
