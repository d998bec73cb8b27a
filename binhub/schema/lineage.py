"""Which names one table has had: its identity through RENAME TABLE, ALTER TABLE … RENAME, DROP and
CREATE, from the schema history's DDL (``binhub history`` follows a row's table with it).

A table's identity is the name it first had and where it was created (``None``: before the
history begins). RENAME keeps the identity under the new name; DROP ends it; a CREATE of a name
makes a new one, so ``orders`` renamed to ``orders_old`` and a new ``orders`` are two tables.
:class:`TableLineage` is replayed in store order: ``advance(position)`` applies every DDL that
starts before ``position``, then ``identity(name)`` says which table the name means there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from binhub.schema.changes import (
    AlterTable,
    CreateTable,
    CreateTableLike,
    DropDatabase,
    DropTables,
    ParsedStatement,
    RenameTable,
    RenameTables,
    TableName,
)
from binhub.schema.scan import Position

__all__ = ["TableIdentity", "TableLineage"]


@dataclass(frozen=True, slots=True)
class TableIdentity:
    born_as: TableName
    born_at: Position | None  # None: the table existed before the history begins


class TableLineage:
    """Replay DDL ``(position, parsed statement)`` in order; see the module docstring."""

    def __init__(self, ddl: Iterable[tuple[Position, ParsedStatement]]) -> None:
        self._ddl = list(ddl)
        self._next = 0
        self._names: dict[TableName, TableIdentity] = {}
        self._bindings: list[tuple[TableName, TableIdentity]] = []  # every (name, table) ever bound

    def identity(self, name: TableName) -> TableIdentity:
        """The table ``name`` means now."""
        found = self._names.get(name)
        if found is None:
            found = self._bind(name, TableIdentity(name, None))
        return found

    def _bind(self, name: TableName, identity: TableIdentity) -> TableIdentity:
        self._names[name] = identity
        self._bindings.append((name, identity))
        return identity

    def advance(self, position: Position) -> None:
        """Apply every DDL that starts before ``position``."""
        while self._next < len(self._ddl) and self._ddl[self._next][0] < position:
            self._apply(*self._ddl[self._next])
            self._next += 1

    def _apply(self, at: Position, parsed: ParsedStatement) -> None:
        for change in parsed.changes:
            if isinstance(change, CreateTable | CreateTableLike):
                if change.name not in self._names or not getattr(change, "if_not_exists", False):
                    self._bind(change.name, TableIdentity(change.name, at))
            elif isinstance(change, RenameTables):
                for old, new in change.pairs:  # pair by pair: a swap through a third name works
                    self._bind(new, self.identity(old))
                    del self._names[old]
            elif isinstance(change, AlterTable):
                for action in change.actions:
                    if isinstance(action, RenameTable):
                        self._bind(action.new, self.identity(change.name))
                        del self._names[change.name]
            elif isinstance(change, DropTables):
                for name in change.names:
                    self._names.pop(name, None)
            elif isinstance(change, DropDatabase):
                for name in [n for n in self._names if n.db == change.name]:
                    del self._names[name]

    def names_of(self, name: TableName) -> tuple[set[TableIdentity], set[TableName]]:
        """Over the whole DDL (replayed on a fresh lineage): every table that was ever called
        ``name``, and every name those tables had."""
        replay = TableLineage(self._ddl)
        replay.identity(name)
        for at, parsed in self._ddl:
            replay._apply(at, parsed)
        wanted = {identity for bound, identity in replay._bindings if bound == name}
        return wanted, {bound for bound, identity in replay._bindings if identity in wanted}
