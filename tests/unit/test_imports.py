"""Every module of binhub imports on its own, in an interpreter that has loaded no other part of
binhub: an import cycle, or a module that works only when another was imported first, fails here
(aiohttp's test_circular_imports does the same, one interpreter per module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each module is imported after every binhub module was dropped from sys.modules, so it is the
# first part of binhub to load; third-party libraries stay loaded (they are not under test), which
# keeps this to one interpreter instead of a hundred. -W error: an import-time warning fails too.
_SCRIPT = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "binhub" or m.startswith("binhub.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(f"{name}:\\n{traceback.format_exc(limit=4)}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def binhub_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "binhub").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue  # runs the command line when imported, by design
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_there_are_modules_to_import() -> None:
    modules = binhub_modules()
    assert "binhub" in modules and "binhub.ops.daemon" in modules and len(modules) > 50


def test_every_module_imports_first() -> None:
    proc = subprocess.run([sys.executable, "-W", "error", "-c", _SCRIPT, *binhub_modules()], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_relay_start_up_leaves_out_what_it_never_runs(tmp_path: Path) -> None:
    # Start-up is a fifth of a short relay run: the admin API (aiohttp), the stream service with the
    # DDL parser (sqlglot), the row decoder and the event classes (the relay decodes no event) load
    # only where they are used; prometheus-client only with the admin API that exports it. The
    # whole command runs (opening the store, the connect refused at port 1), not just its imports.
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('LOADED', ' '.join(m for m in ('aiohttp', 'sqlglot', 'binhub.stream',"
            " 'binhub.schema', 'binhub.binlog.changes', 'binhub.binlog.events', 'binhub.binlog.decode',"
            " 'binhub.binlog.file', 'binhub.ops.http', 'prometheus_client') if m in sys.modules)))\n"
            "from binhub.cli.main import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code, "relay", "--source", "mysql://repl:pw@127.0.0.1:1",
                           "--data-dir", str(tmp_path / "store"), "--until-caught-up", "--log-level", "error"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "cannot connect" in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "LOADED"


def test_stream_to_mysql_start_up_leaves_out_what_it_never_runs() -> None:
    # `binhub stream --to mysql://` exports no metrics (no admin API) and, without --rename,
    # --include/--exclude or --seed-from, parses no DDL names and opens no upstream: prometheus-client,
    # sqlglot and the relay's client (with TLS and the wire protocol) stay unloaded.
    code = ("import sys\n"
            "import binhub.cli.stream, binhub.sinks.mysql.sink\n"
            "from binhub.sinks.mysql.metrics import SinkMetrics\n"
            "from binhub.stream.metrics import StreamMetrics\n"
            "sink, stream = SinkMetrics('s'), StreamMetrics.off()\n"
            "sink.rows.inc(3); sink.conflict('missing row'); stream.lines.inc(); stream.lag.set(1.5)\n"
            "print('LOADED', ' '.join(m for m in ('prometheus_client', 'sqlglot', 'binhub.relay', 'binhub.net.client',"
            " 'binhub.ops.schema_seed', 'binhub.sinks.mysql.ddl_names') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "LOADED"
