"""The operation layer: composes the services (config file → their typed configs, one metrics registry
they register on), logging, the HTTP admin API and the daemon's one lifecycle.

Submodules are imported directly (``from binhub.ops.config import load_config``); this package
re-exports nothing, so importing one part never loads the others (``binhub status`` stays light).
"""
