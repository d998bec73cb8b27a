"""``binhub demo``: the main job end to end on a sandbox primary (see binhub.demo)."""

from __future__ import annotations

from pathlib import Path

import click

from binhub.demo import run_demo


@click.command("demo")
@click.option("--keep", is_flag=True, help="Keep the sandbox primary and the store afterwards.")
@click.option("--work-dir", type=click.Path(path_type=Path), help="Where to put the sandbox and the store.")
def demo(keep: bool, work_dir: Path | None) -> None:
    """Sandbox MariaDB → workload → relay → verify the store → serve it to a real replica → stream its row
    changes → compare tables."""
    result = run_demo(keep=keep, say=click.echo, work_dir=work_dir)
    if not result.ok:
        raise click.ClickException("the store, the replica or the streamed tables do not match the primary (see above)")
