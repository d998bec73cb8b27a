"""Physical hot backup of a running MariaDB (the xtrabackup algorithm, natively).

A service: it reads the server's files with the ``innodb`` codecs and talks SQL to it for the
backup locks, the binlog position and the LSN. Its output is a directory ``mariadb-backup
--prepare`` accepts, plus binhub's ``manifest.json``.
"""

from binhub.backup.config import PhysicalBackupConfig, ServerAddress
from binhub.backup.metadata import Manifest
from binhub.backup.physical import NoProgress, PhysicalBackup, Progress

__all__ = ["Manifest", "NoProgress", "PhysicalBackup", "PhysicalBackupConfig", "Progress", "ServerAddress"]
