"""What the schema history must know about MySQL/MariaDB character sets and collations.

Enough to resolve a column's charset and collation the way the server does (column ← table
default ← database default ← server default, each level naming a charset, a collation or both)
and to follow ``CONVERT TO CHARACTER SET`` (which widens TEXT types whose byte length no longer
fits). Where a name is not listed here the history says "unknown" rather than guess.
"""

from __future__ import annotations

__all__ = [
    "charset_of_collation",
    "collation_by_id",
    "default_collation",
    "max_bytes_per_char",
    "normalize_charset",
    "normalize_collation",
    "python_codec",
]

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


def charset_of_collation(collation: str) -> str:
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


# MySQL charset -> Python codec, for the charsets a client may send statements in.
_CODECS = {
    "utf8mb4": "utf-8", "utf8mb3": "utf-8", "ascii": "ascii", "latin1": "cp1252", "latin2": "iso8859_2",
    "latin5": "iso8859_9", "latin7": "iso8859_13", "greek": "iso8859_7", "hebrew": "iso8859_8", "cp1250": "cp1250",
    "cp1251": "cp1251", "cp1256": "cp1256", "cp1257": "cp1257", "cp850": "cp850", "cp852": "cp852",
    "cp866": "cp866", "koi8r": "koi8_r", "koi8u": "koi8_u", "gbk": "gbk", "gb2312": "gb2312",
    "gb18030": "gb18030", "big5": "big5", "sjis": "shift_jis", "cp932": "cp932", "ujis": "euc_jp",
    "eucjpms": "euc_jp", "euckr": "euc_kr", "tis620": "tis_620", "binary": "utf-8",
}


def python_codec(charset: str | None) -> str:
    """The Python codec for a MySQL charset (UTF-8 where unknown: what servers mostly log)."""
    return _CODECS.get(normalize_charset(charset), "utf-8") if charset else "utf-8"
