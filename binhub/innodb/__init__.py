"""The InnoDB on-disk codecs a physical backup needs: data pages and the MariaDB 10.8+ redo log.

Sans-I/O like ``binlog``: everything here works on bytes handed in; reading files is the caller's job.
"""

from binhub.innodb.page import (
    PageHeader,
    PageType,
    TablespaceFlags,
    crc32c,
    first_corrupt_page,
    page_corruption,
    space_id_of_page0,
)
from binhub.innodb.redo import (
    START_OFFSET,
    Checkpoint,
    LogHeader,
    MtrScan,
    RedoRing,
    ScanStop,
    backup_log_header,
    newest_checkpoint,
    scan_mtrs,
    scan_ring,
)

__all__ = [
    "START_OFFSET",
    "Checkpoint",
    "LogHeader",
    "MtrScan",
    "PageHeader",
    "PageType",
    "RedoRing",
    "ScanStop",
    "TablespaceFlags",
    "backup_log_header",
    "crc32c",
    "first_corrupt_page",
    "newest_checkpoint",
    "page_corruption",
    "scan_mtrs",
    "scan_ring",
    "space_id_of_page0",
]
