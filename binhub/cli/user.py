"""``binhub user add|remove|list --users FILE``: the accounts replicas log in with.

The file keeps password hashes only (see :mod:`binhub.serve.users`); a password given on the
command line or at the prompt goes no further than the hashing.
"""

from __future__ import annotations

from pathlib import Path

import click

from binhub.serve.users import UsersFile, make_user

_USERS = click.option("--users", "users_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
                      help="The users file (created if absent; written with mode 0600).")


@click.group("user")
def user() -> None:
    """Manage the users of `binhub serve` (password hashes only, never plaintext)."""


@user.command("add")
@_USERS
@click.argument("name")
@click.option("--password", default=None, help="The password (prompted for, hidden, when not given).")
@click.option("--admin", is_flag=True, help="May also PURGE BINARY LOGS and KILL other sessions.")
def add(users_file: Path, name: str, password: str | None, admin: bool) -> None:
    """Add NAME, or change its password."""
    if password is None:
        password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    replaced = UsersFile(users_file).add(make_user(name, password, admin=admin))
    click.echo(f"{'updated' if replaced else 'added'} user {name} in {users_file}")


@user.command("remove")
@_USERS
@click.argument("name")
def remove(users_file: Path, name: str) -> None:
    """Remove NAME (its sessions end at their next login)."""
    if not UsersFile(users_file).remove(name):
        raise click.ClickException(f"no user {name!r} in {users_file}")
    click.echo(f"removed user {name} from {users_file}")


@user.command("list")
@_USERS
def list_users(users_file: Path) -> None:
    """List the users (names and flags; the file holds no passwords to show)."""
    if not users_file.exists():
        raise click.ClickException(f"{users_file} does not exist; create it with "
                                   f"`binhub user add --users {users_file} NAME`")
    for u in sorted(UsersFile(users_file).load().values(), key=lambda u: u.name):
        flags = ["admin"] if u.admin else []
        if not u.native_hash:
            flags.append("no password")
        click.echo(u.name + (f"  ({', '.join(flags)})" if flags else ""))
