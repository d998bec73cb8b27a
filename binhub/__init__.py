"""binhub: a binlog hub for MySQL and MariaDB."""

from binhub.errors import BinhubError

__version__ = "0.1.0"
__all__ = ["BinhubError", "__version__"]
