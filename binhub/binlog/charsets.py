"""Character sets and collations: collation ids to charset names, charset names to Python codecs,
and what the schema history needs to resolve a column's charset and collation as the server does
(column ← table default ← database default ← server default, each level naming a charset, a
collation or both; ``CONVERT TO CHARACTER SET`` widens TEXT types by the charsets' byte widths).
Where a name is not listed here the history says "unknown" rather than guess.

The ids are those of MySQL's ``strings/ctype-*.cc`` / ``mysys/charset.cc`` (8.0/9.x, ids up to 323)
and MariaDB's ``strings/ctype-*.cc`` (10.x/11.x: the same ids below 256 where both define them,
NOPAD collations at ``1024 + id`` and the UCA-14.0 ones from 2048 up, which encode their
charset in the id). Where the two servers disagree about an id, the flavour decides.

MySQL's ``latin1`` is Windows-1252 with the five bytes cp1252 leaves undefined mapped to the C1
controls U+0081, U+008D, U+008F, U+0090, U+009D; Python's ``cp1252`` rejects those, so latin1 gets
its own exact translation table.
"""

from __future__ import annotations

from collections.abc import Callable

from binhub.errors import UnsupportedValue

__all__ = [
    "UnsupportedCharset",
    "charset_of_collation",
    "charset_of_collation_name",
    "codec_name",
    "collation_by_id",
    "default_collation",
    "max_bytes_per_char",
    "normalize_charset",
    "normalize_collation",
    "python_codec",
    "text_decoder",
]


class UnsupportedCharset(UnsupportedValue):
    """A column's charset has no decoder in binhub."""


def _ranges(*spans: tuple[int, int, str]) -> dict[int, str]:
    table: dict[int, str] = {}
    for first, last, name in spans:
        for i in range(first, last + 1):
            table[i] = name
    return table


_BOTH: dict[int, str] = {
    1: "big5", 2: "latin2", 3: "dec8", 4: "cp850", 5: "latin1", 6: "hp8", 7: "koi8r", 8: "latin1",
    9: "latin2", 10: "swe7", 11: "ascii", 12: "ujis", 13: "sjis", 14: "cp1251", 15: "latin1", 16: "hebrew",
    18: "tis620", 19: "euckr", 20: "latin7", 21: "latin2", 22: "koi8u", 23: "cp1251", 24: "gb2312",
    25: "greek", 26: "cp1250", 27: "latin2", 28: "gbk", 29: "cp1257", 30: "latin5", 31: "latin1",
    32: "armscii8", 33: "utf8mb3", 34: "cp1250", 35: "ucs2", 36: "cp866", 37: "keybcs2", 38: "macce",
    39: "macroman", 40: "cp852", 41: "latin7", 42: "latin7", 43: "macce", 44: "cp1250", 45: "utf8mb4",
    46: "utf8mb4", 47: "latin1", 48: "latin1", 49: "latin1", 50: "cp1251", 51: "cp1251", 52: "cp1251",
    53: "macroman", 54: "utf16", 55: "utf16", 56: "utf16le", 57: "cp1256", 58: "cp1257", 59: "cp1257",
    60: "utf32", 61: "utf32", 62: "utf16le", 63: "binary", 64: "armscii8", 65: "ascii", 66: "cp1250",
    67: "cp1256", 68: "cp866", 69: "dec8", 70: "greek", 71: "hebrew", 72: "hp8", 73: "keybcs2", 74: "koi8r",
    75: "koi8u", 76: "utf8mb3", 77: "latin2", 78: "latin5", 79: "latin7", 80: "cp850", 81: "cp852",
    82: "swe7", 83: "utf8mb3", 84: "big5", 85: "euckr", 86: "gb2312", 87: "gbk", 88: "sjis", 89: "tis620",
    90: "ucs2", 91: "ujis", 92: "geostd8", 93: "geostd8", 94: "latin1", 95: "cp932", 96: "cp932",
    97: "eucjpms", 98: "eucjpms", 99: "cp1250",
    **_ranges((101, 124, "utf16"), (128, 151, "ucs2"), (160, 183, "utf32"), (192, 215, "utf8mb3"),
              (224, 247, "utf8mb4")),
}
_MYSQL: dict[int, str] = {
    **_BOTH, 159: "ucs2", 248: "gb18030", 249: "gb18030", 250: "gb18030",
    **_ranges((255, 323, "utf8mb4")), 76: "utf8mb3",
}
_MARIADB: dict[int, str] = {
    **_BOTH, 159: "ucs2", 223: "utf8mb3", 576: "utf8mb3", 577: "utf8mb3", 578: "utf8mb3", 608: "utf8mb4", 609: "utf8mb4",
    610: "utf8mb4", 640: "ucs2", 641: "ucs2", 642: "ucs2", 672: "utf16", 673: "utf16", 674: "utf16",
    736: "utf32", 737: "utf32", 738: "utf32",
}
# MariaDB 10.10+ UCA-14.0 collations: id = 2048 + (charset slot << 8) + variant (uca1400 ids).
_MARIADB_UCA1400_SLOTS = {0: "utf8mb3", 1: "utf8mb4", 2: "ucs2", 3: "utf16", 4: "utf32"}


def charset_of_collation(collation_id: int, *, mariadb: bool) -> str | None:
    """The charset name of a collation id, or None if the id is not one binhub knows."""
    table = _MARIADB if mariadb else _MYSQL
    name = table.get(collation_id)
    if name is not None:
        return name
    if mariadb:
        if 1024 <= collation_id < 2048:  # NOPAD twin of a PAD SPACE collation
            return table.get(collation_id - 1024)
        if 2048 <= collation_id < 4096:
            return _MARIADB_UCA1400_SLOTS.get((collation_id - 2048) >> 8)
    return None


_LATIN1_TABLE = {i: ord(bytes([i]).decode("cp1252")) for i in range(0x80, 0xA0)
                 if i not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}

# MySQL charset name -> Python codec name.
_CODECS = {
    "utf8mb4": "utf-8", "utf8mb3": "utf-8", "utf8": "utf-8", "ascii": "ascii", "latin2": "iso8859_2",
    "latin5": "iso8859_9", "latin7": "iso8859_13", "greek": "iso8859_7", "hebrew": "iso8859_8",
    "cp1250": "cp1250", "cp1251": "cp1251", "cp1256": "cp1256", "cp1257": "cp1257", "cp850": "cp850",
    "cp852": "cp852", "cp866": "cp866", "koi8r": "koi8_r", "koi8u": "koi8_u", "tis620": "tis_620",
    "gbk": "gbk", "gb2312": "gb2312", "gb18030": "gb18030", "big5": "big5", "ujis": "euc_jp",
    "eucjpms": "euc_jp", "sjis": "shift_jis", "cp932": "cp932", "euckr": "euc_kr", "ucs2": "utf-16-be",
    "utf16": "utf-16-be", "utf16le": "utf-16-le", "utf32": "utf-32-be", "macroman": "mac_roman",
    "macce": "mac_latin2",
}


def _latin1(data: bytes) -> str:
    return data.decode("latin-1").translate(_LATIN1_TABLE)


def text_decoder(charset: str) -> Callable[[bytes], str]:
    """A function decoding a column's bytes in this MySQL charset (raises UnicodeDecodeError on bytes
    that are not valid in it). ``binary`` has none: such columns stay bytes."""
    if charset == "latin1":
        return _latin1
    codec = _CODECS.get(charset)
    if codec is None:
        raise UnsupportedCharset(f"binhub has no decoder for the {charset} charset",
                                 hint="supported: latin1, " + ", ".join(sorted(_CODECS)))
    return lambda data: data.decode(codec)


def codec_name(charset: str) -> str | None:
    """The Python codec of a charset (``latin1`` has a table of its own, see _latin1), or None."""
    return _CODECS.get(charset)


def python_codec(charset: str | None) -> str:
    """The Python codec for the text of a statement sent in this charset (UTF-8 where unknown or
    binary: what servers mostly log; ``latin1`` as cp1252, its Windows code page)."""
    if not charset:
        return "utf-8"
    charset = normalize_charset(charset)
    return "cp1252" if charset == "latin1" else _CODECS.get(charset, "utf-8")


# ---------------------------------------------------------------------------------------------
# Names: the schema history's view (charsets and collations by name)

# charset -> (default collation, max bytes per character). MariaDB 10.x defaults; MySQL 8 differs
# only for utf8mb4 (see default_collation).
_CHARSETS: dict[str, tuple[str, int]] = {
    "armscii8": ("armscii8_general_ci", 1), "ascii": ("ascii_general_ci", 1), "big5": ("big5_chinese_ci", 2),
    "binary": ("binary", 1), "cp1250": ("cp1250_general_ci", 1), "cp1251": ("cp1251_general_ci", 1),
    "cp1256": ("cp1256_general_ci", 1), "cp1257": ("cp1257_general_ci", 1), "cp850": ("cp850_general_ci", 1),
    "cp852": ("cp852_general_ci", 1), "cp866": ("cp866_general_ci", 1), "cp932": ("cp932_japanese_ci", 2),
    "dec8": ("dec8_swedish_ci", 1), "eucjpms": ("eucjpms_japanese_ci", 3), "euckr": ("euckr_korean_ci", 2),
    "gb18030": ("gb18030_chinese_ci", 4), "gb2312": ("gb2312_chinese_ci", 2), "gbk": ("gbk_chinese_ci", 2),
    "geostd8": ("geostd8_general_ci", 1), "greek": ("greek_general_ci", 1), "hebrew": ("hebrew_general_ci", 1),
    "hp8": ("hp8_english_ci", 1), "keybcs2": ("keybcs2_general_ci", 1), "koi8r": ("koi8r_general_ci", 1),
    "koi8u": ("koi8u_general_ci", 1), "latin1": ("latin1_swedish_ci", 1), "latin2": ("latin2_general_ci", 1),
    "latin5": ("latin5_turkish_ci", 1), "latin7": ("latin7_general_ci", 1), "macce": ("macce_general_ci", 1),
    "macroman": ("macroman_general_ci", 1), "sjis": ("sjis_japanese_ci", 2), "swe7": ("swe7_swedish_ci", 1),
    "tis620": ("tis620_thai_ci", 1), "ucs2": ("ucs2_general_ci", 2), "ujis": ("ujis_japanese_ci", 3),
    "utf16": ("utf16_general_ci", 4), "utf16le": ("utf16le_general_ci", 4), "utf32": ("utf32_general_ci", 4),
    "utf8mb3": ("utf8mb3_general_ci", 3), "utf8mb4": ("utf8mb4_general_ci", 4),
}
_MYSQL8_UTF8MB4_DEFAULT = "utf8mb4_0900_ai_ci"

# Collation ids a QUERY event may name as the server's collation (Q_CHARSET_CODE), for the
# charsets in use on real servers. MySQL 8 numbers its utf8mb4_*_0900_* collations 255..323.
_COLLATION_IDS: dict[int, str] = {
    1: "big5_chinese_ci", 5: "latin1_german1_ci", 8: "latin1_swedish_ci", 9: "latin2_general_ci",
    11: "ascii_general_ci", 24: "gb2312_chinese_ci", 28: "gbk_chinese_ci", 31: "latin1_german2_ci",
    33: "utf8mb3_general_ci", 35: "ucs2_general_ci", 45: "utf8mb4_general_ci", 46: "utf8mb4_bin",
    47: "latin1_bin", 48: "latin1_general_ci", 49: "latin1_general_cs", 51: "cp1251_general_ci",
    54: "utf16_general_ci", 56: "utf16le_general_ci", 60: "utf32_general_ci", 63: "binary", 65: "ascii_bin",
    76: "utf8mb3_tolower_ci", 83: "utf8mb3_bin", 87: "gbk_bin", 192: "utf8mb3_unicode_ci",
    224: "utf8mb4_unicode_ci", 246: "utf8mb4_unicode_520_ci", 248: "gb18030_chinese_ci",
    255: "utf8mb4_0900_ai_ci", 305: "utf8mb4_0900_as_ci", 309: "utf8mb4_0900_bin",
}


def normalize_charset(name: str) -> str:
    """The server's current name for a charset (``utf8`` is ``utf8mb3`` since MySQL 8.0 / MariaDB 10.6)."""
    name = name.lower()
    return "utf8mb3" if name == "utf8" else name


def normalize_collation(name: str) -> str:
    name = name.lower()
    return "utf8mb3" + name[4:] if name.startswith("utf8_") else name


def charset_of_collation_name(collation: str) -> str:
    """``latin1_bin`` -> ``latin1``; ``binary`` -> ``binary``."""
    collation = normalize_collation(collation)
    if collation == "binary":
        return "binary"
    return collation.split("_", 1)[0]


def default_collation(charset: str, flavour: str = "mariadb", utf8mb4_default: str | None = None) -> str | None:
    """The collation a charset gets when none is named; None for a charset this table lacks.

    ``utf8mb4_default`` is what the statement's QUERY event says (MySQL 8 writes it), else the
    flavour's own default is used."""
    charset = normalize_charset(charset)
    if charset == "utf8mb4":
        if utf8mb4_default:
            return utf8mb4_default
        if flavour == "mysql":
            return _MYSQL8_UTF8MB4_DEFAULT
    entry = _CHARSETS.get(charset)
    return entry[0] if entry else None


def max_bytes_per_char(charset: str) -> int | None:
    entry = _CHARSETS.get(normalize_charset(charset))
    return entry[1] if entry else None


def collation_by_id(collation_id: int) -> str | None:
    return _COLLATION_IDS.get(collation_id)
