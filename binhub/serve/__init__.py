"""Serve: binhub as a binlog server that real replicas (and other binhubs) replicate from."""
