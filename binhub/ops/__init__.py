"""The operation layer: config, logging, metrics, the HTTP admin API and the daemon's lifecycle.

Submodules are imported directly (``from binhub.ops.config import load_config``); this package
re-exports nothing, so importing one part never loads the others (``binhub status`` stays light).
"""
