from typing import Any

def rows_json(rows: bytes, op: int, plan: tuple[Any, ...], before_bits: bytes, after_bits: bytes,
              pk: tuple[int, ...] | None, head: bytes, tail: bytes, keys: list[bytes] | None = None) -> bytes: ...
