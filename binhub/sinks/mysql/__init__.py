"""``--to mysql://``: apply a stream's row changes and DDL to a MySQL/MariaDB server, exactly once."""
