"""The fallback DDL parser: MySQL's table and database DDL grammar, read straight from tokens.

sqlglot (:mod:`binhub.schema.ddl`) parses most DDL into an AST, but gives up on statements that
matter for schema history: ``RENAME TABLE a TO b, c TO d`` (every gh-ost/pt-osc cut-over),
``CONVERT TO CHARACTER SET``, ``ADD (a INT, b INT)``, partition clauses, spatial column types,
``ALTER ONLINE/IGNORE TABLE``. This module reads those statements (and every other table DDL,
so the two parsers can be checked against each other) by walking the clauses: only what changes
columns, the primary key or charsets is kept; index, partition and option clauses are skipped
as whole clauses, never guessed into column changes. Anything it does not recognise raises
:class:`DdlSyntaxError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from binhub.schema.changes import (
    AddColumn,
    AddPrimaryKey,
    AlterAction,
    AlterDatabase,
    AlterTable,
    Change,
    ChangeColumn,
    ConvertCharset,
    CreateDatabase,
    CreateTable,
    CreateTableLike,
    DropColumn,
    DropDatabase,
    DropPrimaryKey,
    DropTables,
    ModifyColumn,
    RenameColumn,
    RenameTable,
    RenameTables,
    SetColumnDefault,
    SetColumnVisibility,
    SetTableCharset,
    SetTableComment,
    TableName,
    TruncateTable,
)
from binhub.schema.coldef import DdlSyntaxError, default_value, parse_column_def, split_top_level
from binhub.schema.sqltext import Token, TokenCursor

__all__ = ["parse_fallback", "table_comment", "table_names_in"]

# ALTER TABLE clauses that change no column: skipped whole (up to the next top-level comma).
_NO_COLUMN_CLAUSES = frozenset({
    "ENGINE", "AUTO_INCREMENT", "AVG_ROW_LENGTH", "CHECKSUM", "COMMENT", "COMPRESSION", "CONNECTION",
    "DATA", "INDEX", "DELAY_KEY_WRITE", "ENCRYPTION", "ENCRYPTED", "ENCRYPTION_KEY_ID", "INSERT_METHOD",
    "KEY_BLOCK_SIZE", "MAX_ROWS", "MIN_ROWS", "PACK_KEYS", "PASSWORD", "ROW_FORMAT", "STATS_AUTO_RECALC",
    "STATS_PERSISTENT", "STATS_SAMPLE_PAGES", "TABLESPACE", "UNION", "ALGORITHM", "LOCK", "FORCE",
    "ORDER", "ENABLE", "DISABLE", "DISCARD", "IMPORT", "PAGE_CHECKSUM", "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL", "TRANSACTIONAL", "IETF_QUOTES", "SEQUENCE", "WITH", "WITHOUT", "STORAGE",
    "START", "SECONDARY_ENGINE", "SECONDARY_ENGINE_ATTRIBUTE", "ENGINE_ATTRIBUTE", "AUTOEXTEND_SIZE",
    "VALIDATION", "UPGRADE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR", "TRUNCATE", "COALESCE",
    "REORGANIZE", "EXCHANGE", "REMOVE", "PARTITION", "PARTITIONS", "SUBPARTITION", "CONVERT_PARTITION",
})
# ADD/DROP of these change no column (the primary key is handled on its own). Reserved words: a
# column of that name must be backquoted, so the bare word always starts a key or constraint.
_INDEX_WORDS = frozenset({"INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CONSTRAINT", "CHECK",
                          "PARTITION"})
# Not reserved: they start a clause only before these words (else they may name a column).
_INDEX_WORDS_BEFORE = {"PERIOD": ("FOR",), "SYSTEM": ("VERSIONING",), "VECTOR": ("INDEX", "KEY")}


def _starts_key(tokens: Sequence[Token], primary: bool = False) -> bool:
    """Whether a clause or table element starts a key, constraint or partition, not a column."""
    head = tokens[0] if tokens else None
    if head is None or head.kind != "word":
        return False
    word = head.upper
    if word in _INDEX_WORDS or primary and word == "PRIMARY":
        return True
    follow = _INDEX_WORDS_BEFORE.get(word)
    return follow is not None and len(tokens) > 1 and tokens[1].is_(*follow)


class _Cur(TokenCursor):
    def table(self, default_db: str) -> TableName:
        first = self.name()
        if self.accept("."):
            return TableName(first, self.name())
        if not default_db:
            raise DdlSyntaxError(f"table {first} is not qualified and the statement has no default database")
        return TableName(default_db, first)


def parse_fallback(tokens: Sequence[Token], default_db: str, flavour: str = "mariadb") -> list[Change]:
    """The changes of a table or database DDL statement (tokens of the whole statement)."""
    c = _Cur(tokens)
    verb = c.take().upper
    if verb == "CREATE":
        return [_create(c, default_db, flavour)]
    if verb == "ALTER":
        return [_alter(c, default_db, flavour)]
    if verb == "RENAME":
        return [_rename(c, default_db)]
    if verb == "DROP":
        return [_drop(c, default_db)]
    if verb == "TRUNCATE":
        c.accept("TABLE")
        name = c.table(default_db)
        _end(c)
        return [TruncateTable(name)]
    raise DdlSyntaxError(f"{verb} is not a table or database statement")


def _end(c: _Cur) -> None:
    if not c.done():
        raise DdlSyntaxError(f"unexpected {c.peek().text!r}")  # type: ignore[union-attr]


def _create(c: _Cur, default_db: str, flavour: str) -> Change:
    or_replace = c.accept_seq("OR", "REPLACE")
    temporary = c.accept("TEMPORARY")
    if c.accept("DATABASE", "SCHEMA"):
        if_not_exists = c.accept_seq("IF", "NOT", "EXISTS")
        db_name = c.name()
        charset, collation = _charset_options(c.rest())
        return CreateDatabase(db_name, charset, collation, if_not_exists, or_replace)
    c.expect("TABLE")
    if_not_exists = c.accept_seq("IF", "NOT", "EXISTS")
    name = c.table(default_db)
    if c.accept("LIKE") or (c.at("(") and (t := c.peek(1)) is not None and t.is_("LIKE")):
        paren = c.accept("(")
        c.accept("LIKE")
        source = c.table(default_db)
        if paren:
            c.expect(")")
        _end(c)
        return CreateTableLike(name, source, if_not_exists, or_replace, temporary)
    if not c.at("("):
        raise DdlSyntaxError("CREATE TABLE without a column list (CREATE TABLE ... SELECT) names no columns")
    body = c.group()
    options = c.rest()
    if any(t.is_("SELECT") for t in options) or any(t.is_("SELECT") for t in body[:1]):
        raise DdlSyntaxError("CREATE TABLE ... SELECT: the columns come from a query")
    columns = []
    primary_key: tuple[str, ...] = ()
    for item in split_top_level(body):
        if _starts_key(item, primary=True):
            pk = _table_primary_key(item)
            if pk is not None:
                primary_key = pk
            continue
        columns.append(parse_column_def(item, flavour))
    charset, collation = _charset_options(_partition_free(options))
    return CreateTable(name, tuple(columns), primary_key, charset, collation, if_not_exists, or_replace, temporary,
                       table_comment(_partition_free(options)))


def _table_primary_key(item: Sequence[Token]) -> tuple[str, ...] | None:
    """The columns of ``[CONSTRAINT [name]] PRIMARY KEY [USING x] (cols)``; None for other keys."""
    c = _Cur(item)
    if c.accept("CONSTRAINT") and not c.at("PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
        c.take()
    if not c.accept_seq("PRIMARY", "KEY"):
        return None
    while not c.at("("):
        c.take()
    return _key_columns(c.group())


def _key_columns(tokens: Sequence[Token]) -> tuple[str, ...]:
    """Key part names from ``a, b(10) DESC, (expr)``: functional parts have no column name."""
    out = []
    for part in split_top_level(tokens):
        if part[0].is_name:
            out.append(part[0].text)
    return tuple(out)


def _partition_free(options: Sequence[Token]) -> list[Token]:
    """Table options up to a PARTITION BY clause (which changes no column)."""
    for k, t in enumerate(options):
        if t.is_("PARTITION") and k + 1 < len(options) and options[k + 1].is_("BY"):
            return list(options[:k])
    return list(options)


def _charset_options(tokens: Sequence[Token]) -> tuple[str | None, str | None]:
    """[DEFAULT] CHARACTER SET|CHARSET [=] x and [DEFAULT] COLLATE [=] y among table/database options."""
    charset = collation = None
    c = _Cur(tokens)
    while c.peek() is not None:
        if c.accept_seq("CHARACTER", "SET") or c.accept_seq("CHAR", "SET") or c.accept("CHARSET"):
            c.accept("=")
            charset = c.take().text
        elif c.accept("COLLATE"):
            c.accept("=")
            collation = c.take().text
        else:
            c.take()
    return charset, collation


def table_comment(options: Sequence[Token]) -> str | None:
    """``COMMENT [=] 'text'`` among table options (None: not there)."""
    for k, t in enumerate(options[:-1]):
        if t.is_("COMMENT"):
            value = options[k + 2] if options[k + 1].is_("=") and k + 2 < len(options) else options[k + 1]
            if value.kind == "string":
                return value.text  # '' clears a comment: the catalog keeps it as none
    return None


def _alter(c: _Cur, default_db: str, flavour: str) -> Change:
    while c.accept("ONLINE", "OFFLINE", "IGNORE"):
        pass
    if c.accept("DATABASE", "SCHEMA"):
        db_name = default_db
        if not c.at("DEFAULT", "CHARACTER", "CHAR", "CHARSET", "COLLATE", "UPGRADE", "READ", "COMMENT"):
            db_name = c.name()
        charset, collation = _charset_options(c.rest())
        if not db_name:
            raise DdlSyntaxError("ALTER DATABASE without a name and without a default database")
        return AlterDatabase(db_name, charset, collation)
    c.expect("TABLE")
    c.accept_seq("IF", "EXISTS")
    name = c.table(default_db)
    if c.accept("WAIT"):  # MariaDB: ALTER TABLE t WAIT n | NOWAIT <clauses>
        c.take()
    c.accept("NOWAIT")
    actions: list[AlterAction] = []
    for clause in split_top_level(_partition_free(c.rest())):
        actions.extend(_alter_clause(_Cur(clause), default_db, flavour))
    return AlterTable(name, tuple(actions))


def _alter_clause(c: _Cur, default_db: str, flavour: str) -> list[AlterAction]:
    if c.accept("ADD"):
        return _alter_add(c, flavour)
    if c.accept("DROP"):
        if c.accept_seq("PRIMARY", "KEY"):
            return [DropPrimaryKey()]
        if _starts_key(c.toks[c.i:]):
            return []
        c.accept("COLUMN")
        if_exists = c.accept_seq("IF", "EXISTS")
        name = _column_name(c)
        c.accept("RESTRICT", "CASCADE")
        return [DropColumn(name, if_exists)]
    if c.accept("MODIFY"):
        c.accept("COLUMN")
        if_exists = c.accept_seq("IF", "EXISTS")
        return [ModifyColumn(parse_column_def(c.rest(), flavour), if_exists)]
    if c.accept("CHANGE"):
        c.accept("COLUMN")
        if_exists = c.accept_seq("IF", "EXISTS")
        old = _column_name(c)
        return [ChangeColumn(old, parse_column_def(c.rest(), flavour), if_exists)]
    if c.accept("RENAME"):
        if c.accept("COLUMN"):
            c.accept_seq("IF", "EXISTS")
            old = _column_name(c)
            c.expect("TO")
            return [RenameColumn(old, c.name())]
        if c.accept("INDEX", "KEY"):
            return []
        c.accept("TO", "AS")
        return [RenameTable(c.table(default_db))]
    if c.accept("ALTER"):
        if c.at("INDEX", "KEY", "CHECK", "CONSTRAINT"):
            return []
        c.accept("COLUMN")
        c.accept_seq("IF", "EXISTS")
        col = _column_name(c)
        if c.accept_seq("SET", "INVISIBLE"):
            return [SetColumnVisibility(col, True)]
        if c.accept_seq("SET", "VISIBLE"):
            return [SetColumnVisibility(col, False)]
        if c.accept_seq("SET", "DEFAULT"):
            return [SetColumnDefault(col, default_value(c))]
        if c.accept_seq("DROP", "DEFAULT"):
            return [SetColumnDefault(col, None)]
        raise DdlSyntaxError(f"unknown ALTER COLUMN {col} clause")
    if c.accept("CONVERT"):
        c.expect("TO")
        if not (c.accept_seq("CHARACTER", "SET") or c.accept("CHARSET")):
            raise DdlSyntaxError("expected CHARACTER SET after CONVERT TO")
        c.accept("=")
        charset_tok = c.take()
        charset = None if charset_tok.is_("DEFAULT") else charset_tok.text
        _, collation = _charset_options(c.rest())
        return [ConvertCharset(charset, collation)]
    c.accept("DEFAULT")
    if c.at("CHARACTER", "CHAR", "CHARSET", "COLLATE"):
        charset, collation = _charset_options(c.rest())
        return [SetTableCharset(charset, collation)]
    head = c.peek()
    if head is not None and head.kind == "word" and head.upper in _NO_COLUMN_CLAUSES:
        # Table options may follow one another without commas (ENGINE=InnoDB DEFAULT CHARSET=x).
        options = c.rest()
        charset, collation = _charset_options(options)
        comment = table_comment(options)
        actions: list[AlterAction] = [SetTableCharset(charset, collation)] if charset or collation else []
        return actions + ([SetTableComment(comment)] if comment is not None else [])
    raise DdlSyntaxError(f"unknown ALTER TABLE clause starting with {head.text if head else 'nothing'!r}")


def _alter_add(c: _Cur, flavour: str) -> list[AlterAction]:
    if c.at("PRIMARY") or c.at("CONSTRAINT"):
        pk = _table_primary_key(c.rest())
        return [AddPrimaryKey(pk)] if pk is not None else []
    if _starts_key(c.toks[c.i:]):
        return []
    c.accept("COLUMN")
    if_not_exists = c.accept_seq("IF", "NOT", "EXISTS")
    if c.at("("):
        # ADD [COLUMN] (a INT, b INT): several columns, each appended at the end.
        out: list[AlterAction] = []
        for item in split_top_level(c.group()):
            if _starts_key(item, primary=True):
                pk = _table_primary_key(item)
                if pk is not None:
                    out.append(AddPrimaryKey(pk))
                continue
            out.append(AddColumn(parse_column_def(item, flavour), if_not_exists))
        return out
    return [AddColumn(parse_column_def(c.rest(), flavour), if_not_exists)]


def _column_name(c: _Cur) -> str:
    name = c.name()
    while c.accept("."):  # qualified: the last part
        name = c.name()
    return name


def _rename(c: _Cur, default_db: str) -> Change:
    if not c.accept("TABLE", "TABLES"):
        raise DdlSyntaxError("RENAME of something other than tables")
    c.accept_seq("IF", "EXISTS")
    pairs = []
    for part in split_top_level(c.rest()):
        pc = _Cur(part)
        old = pc.table(default_db)
        while pc.accept("WAIT", "NOWAIT"):
            if pc.peek() is not None and pc.peek().kind == "number":  # type: ignore[union-attr]
                pc.take()
        pc.expect("TO")
        new = pc.table(default_db)
        _end(pc)
        pairs.append((old, new))
    if not pairs:
        raise DdlSyntaxError("RENAME TABLE names no tables")
    return RenameTables(tuple(pairs))


def _drop(c: _Cur, default_db: str) -> Change:
    temporary = c.accept("TEMPORARY")
    if c.accept("INDEX"):
        # Only DROP INDEX `PRIMARY` ON t reaches the parsers: other index DDL is ignored before.
        if c.name().upper() != "PRIMARY":
            raise DdlSyntaxError("DROP INDEX of an index other than PRIMARY changes no column")
        c.expect("ON")
        name = c.table(default_db)
        return AlterTable(name, (DropPrimaryKey(),))
    if c.accept("DATABASE", "SCHEMA"):
        if_exists = c.accept_seq("IF", "EXISTS")
        db_name = c.name()
        _end(c)
        return DropDatabase(db_name, if_exists)
    if not c.accept("TABLE", "TABLES"):
        raise DdlSyntaxError("DROP of something other than tables or databases")
    if_exists = c.accept_seq("IF", "EXISTS")
    rest = [t for t in c.rest() if not t.is_("RESTRICT", "CASCADE", "WAIT", "NOWAIT", "FORCE")]
    names = []
    for part in split_top_level(rest):
        pc = _Cur(part)
        names.append(pc.table(default_db))
        while pc.peek() is not None and pc.peek().kind == "number":  # type: ignore[union-attr]
            pc.take()  # WAIT n
        _end(pc)
    return DropTables(tuple(names), if_exists, temporary)


def table_names_in(tokens: Sequence[Token], default_db: str) -> tuple[TableName, ...]:
    """Best effort, for a statement no parser understood: the tables it names, so exactly those
    can be marked unknown. Looks after TABLE/TABLES (and IF [NOT] EXISTS), after TO in a RENAME,
    after LIKE, and at every comma-separated item of a RENAME or DROP."""
    out: list[TableName] = []
    toks = list(tokens)
    verb = toks[0].upper if toks else ""
    for k, t in enumerate(toks):
        if t.is_("TABLE", "TABLES", "SEQUENCE") or (t.is_("TO", "LIKE", ",") and verb in ("RENAME", "DROP", "CREATE", "ALTER")):
            c = _Cur(toks[k + 1:])
            c.accept_seq("IF", "NOT", "EXISTS")
            c.accept_seq("IF", "EXISTS")
            try:
                name = c.table(default_db)
            except DdlSyntaxError:
                continue
            if t.is_(",") and verb not in ("RENAME", "DROP"):
                continue
            if name not in out:
                out.append(name)
        if t.is_("(") and verb in ("CREATE", "ALTER") and out:
            break  # column lists follow: no more table names
    return tuple(out)
