"""Logical, parallel backup and its restore: a consistent dump of a running MySQL/MariaDB into
zstd-compressed chunks of LOAD DATA lines, and the load of those chunks into another server.

A module per concept: ``consistent`` (the one point every thread reads at), ``catalog`` (what the
dictionary says), ``chunking`` (how a table splits), ``literals`` (how a value comes out and goes
back exactly), ``tsv`` (row packets to lines), ``writer`` (chunk files), ``manifest`` (manifest.json), ``workers`` (the session threads), ``dump``
(the backup), ``loader`` (the restore).
"""

from binhub.backup.logical.config import LogicalBackupConfig, LogicalRestoreConfig
from binhub.backup.logical.dump import LogicalBackup
from binhub.backup.logical.loader import LogicalRestore, LogicalRestoreResult, restore_logical, verify_chunks
from binhub.backup.logical.manifest import LogicalManifest
from binhub.backup.logical.workers import NoProgress, Progress

__all__ = [
    "LogicalBackup", "LogicalBackupConfig", "LogicalManifest", "LogicalRestore", "LogicalRestoreConfig",
    "LogicalRestoreResult", "NoProgress", "Progress", "restore_logical", "verify_chunks",
]
