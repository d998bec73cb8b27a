"""The schema history: DDL parsed into table changes, and the columns of ``db.t`` at any position.

Sits above the codecs and below the store: it reads QUERY events handed to it and writes only its
own files. ``parse_statement`` (sqlglot's MySQL dialect, with a fallback parser) turns a statement
into changes; ``Catalog`` follows them; ``SchemaHistory`` keeps them on disk with snapshots;
``catalog_from_information_schema`` seeds tables created before the store began; ``merge_table_map``
and ``check_table_map`` reconcile the history with a TABLE_MAP event.
"""

from binhub.schema.catalog import Catalog, Charset, StatementContext, TableDef
from binhub.schema.changes import Outcome, ParsedStatement, TableName
from binhub.schema.ddl import parse_statement
from binhub.schema.history import SchemaCursor, SchemaHistory, SchemaProblem
from binhub.schema.scan import Position, QueryRecord, QueryScanner
from binhub.schema.seed import catalog_from_information_schema
from binhub.schema.tablemap import OptionalMetadata, check_table_map, merge_table_map

__all__ = [
    "Catalog",
    "Charset",
    "OptionalMetadata",
    "Outcome",
    "ParsedStatement",
    "Position",
    "QueryRecord",
    "QueryScanner",
    "SchemaCursor",
    "SchemaHistory",
    "SchemaProblem",
    "StatementContext",
    "TableDef",
    "TableName",
    "catalog_from_information_schema",
    "check_table_map",
    "merge_table_map",
    "parse_statement",
]
