"""``binhub status [--api URL]``: ask a running daemon's admin API for ``/status`` and show it.

Only the standard library talks HTTP here: the command must start fast and work on a box where
the daemon runs, with nothing but binhub installed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click
from rich.console import Console
from rich.table import Table

# The same address as binhub.ops.config.DEFAULT_HTTP_LISTEN (a test keeps them equal); not imported
# from there so that `binhub status` loads neither the config nor the storage stack.
DEFAULT_API = "http://127.0.0.1:9307"
TIMEOUT = 5.0


def fetch_status(api: str, *, timeout: float = TIMEOUT) -> dict[str, Any]:
    """GET ``{api}/status`` and decode it; raises ``click.ClickException`` with a sentence to act on."""
    url = api.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given URL
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"the admin API at {api} answered {exc.code} {exc.reason} for /status") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"cannot reach the binhub admin API at {api} ({reason}); is `binhub run` running with [http] "
            f"enabled, and is --api its [http] listen address?"
        ) from exc
    except ValueError as exc:
        raise click.ClickException(f"{url} did not answer JSON; is --api a binhub admin API?") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{url} answered JSON that is not an object; is --api a binhub admin API?")
    return data


def _rows(prefix: str, value: Any) -> list[tuple[str, str]]:
    """Flatten nested objects into ``a.b.c`` rows: sections are shallow, a table reads better than a tree."""
    if isinstance(value, dict) and value:
        out: list[tuple[str, str]] = []
        for key, inner in value.items():
            out.extend(_rows(f"{prefix}.{key}" if prefix else str(key), inner))
        return out
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value) or "-")]
    return [(prefix, "-" if value is None else str(value))]


def render_status(data: dict[str, Any], console: Console) -> None:
    for section, value in data.items():
        table = Table(title=section, title_justify="left", show_header=False, box=None, pad_edge=False)
        table.add_column("key", style="bold")
        table.add_column("value")
        for key, text in _rows("", value) if isinstance(value, dict) else [("", str(value))]:
            style = "red" if key == "error" or key.endswith(".error") else None
            table.add_row(key, text, style=style)
        console.print(table)
        console.print()


@click.command("status")
@click.option("--api", default=DEFAULT_API, show_default=True, metavar="URL",
              help="The daemon's admin API ([http] listen in its config).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON document instead of tables.")
def status(api: str, as_json: bool) -> None:
    """Show the status of a running `binhub run` daemon: relay, store, uptime."""
    data = fetch_status(api)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    render_status(data, Console())
