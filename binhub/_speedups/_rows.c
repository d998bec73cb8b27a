/* Rows events to binhub JSON lines in C: the twin of binhub.binlog.json_form's pure path (same
 * input, the same JSON values; the tests parse both and compare). Python compiles a plan per table
 * layout (binhub/binlog/row_json.py): for every column a kind, its metadata, its JSON key and, for
 * the kinds that need one, an extra (ENUM/SET labels, the pad length of BINARY(n), or a Python
 * callable for what C does not decode: binary JSON, VECTOR, charsets other than utf8/latin1, ...).
 *
 * rows_json(rows, op, plan, before_bits, after_bits, pk, head, tail[, keys]) -> bytes
 *   rows        the rows part of a rows event (after the columns-present bitmaps), uncompressed
 *   op          0 insert, 1 update, 2 delete
 *   pk          None (unknown: "pk":null), () (no key: the whole row) or column indexes
 *   head, tail  what each line starts and ends with ({"op":...,"table":..., and ,"gtid":...}\n)
 *   keys        a list (optional): each line's "pk" JSON text is appended to it (a Kafka key)
 * Raises ValueError when a row runs past the end; Python then decodes the event the slow way,
 * which names the file, offset and row.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    K_NULL, K_INT8, K_UINT8, K_INT16, K_UINT16, K_INT24, K_UINT24, K_INT32, K_UINT32, K_INT64, K_UINT64,
    K_FLOAT, K_DOUBLE, K_DECIMAL, K_DATE, K_TIME2, K_DATETIME2, K_TIMESTAMP2, K_YEAR, K_UTF8, K_LATIN1,
    K_BINARY, K_BINARY_PAD, K_ENUM, K_SET, K_BIT, K_GEOMETRY, K_FALLBACK, K_COUNT
};

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = PyMem_Realloc(b->data, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_add(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

#define ADD_LIT(b, s) buf_add((b), (s), sizeof(s) - 1)

typedef struct {
    int kind;
    long meta;
    const char *name;
    Py_ssize_t name_len;
    PyObject *extra;
} Column;

typedef struct {
    const unsigned char *p;
    Py_ssize_t pos, end;
    PyObject *rows;
} Reader;

static int need(Reader *r, Py_ssize_t n) {
    if (n < 0 || r->pos + n > r->end) {
        PyErr_SetString(PyExc_ValueError, "row image runs past the end of the event");
        return -1;
    }
    return 0;
}

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Decimal digits without snprintf (which costs more than the rest of a small row). */
static int add_uint(Buf *b, unsigned long long v) {
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_add(b, tmp + i, (size_t)(24 - i));
}

static int add_int(Buf *b, long long v) {
    if (v < 0) {
        if (ADD_LIT(b, "-") < 0)
            return -1;
        return add_uint(b, (unsigned long long)(-(v + 1)) + 1);
    }
    return add_uint(b, (unsigned long long)v);
}

/* `width` digits of v, zero-padded, into o. */
static char *digits(char *o, unsigned long long v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

/* ---- strings ---------------------------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

static int add_escaped_ascii_or_utf8(Buf *b, const unsigned char *s, Py_ssize_t n) {
    /* s is valid UTF-8: copy it, escaping what JSON requires. */
    if (buf_reserve(b, (size_t)n * 6 + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = HEX[c >> 4]; *o++ = HEX[c & 15];
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* Strict UTF-8 (what Python's decoder accepts): no overlongs, no surrogates, nothing above U+10FFFF. */
static int valid_utf8(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n)
            return 0;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += len;
    }
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int add_base64(Buf *b, const unsigned char *s, Py_ssize_t n) {
    if (buf_reserve(b, (size_t)(n + 2) / 3 * 4 + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    Py_ssize_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = B64[v >> 18]; *o++ = B64[(v >> 12) & 63]; *o++ = B64[(v >> 6) & 63]; *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = B64[v >> 18]; *o++ = B64[(v >> 12) & 63]; *o++ = '='; *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = B64[v >> 18]; *o++ = B64[(v >> 12) & 63]; *o++ = B64[(v >> 6) & 63]; *o++ = '=';
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int add_undecoded(Buf *b, const unsigned char *s, Py_ssize_t n, PyObject *charset_json) {
    if (ADD_LIT(b, "{\"undecoded\":") < 0 || add_base64(b, s, n) < 0 || ADD_LIT(b, ",\"charset\":") < 0)
        return -1;
    if (charset_json && PyBytes_Check(charset_json))
        return buf_add(b, PyBytes_AS_STRING(charset_json), (size_t)PyBytes_GET_SIZE(charset_json)) < 0 ||
               ADD_LIT(b, "}");
    return ADD_LIT(b, "null}");
}

/* MySQL latin1 is cp1252 with five C1 controls kept as they are. */
static const uint16_t CP1252_80[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D,
    0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
    0x0153, 0x009D, 0x017E, 0x0178};

static int add_latin1(Buf *b, const unsigned char *s, Py_ssize_t n) {
    if (buf_reserve(b, (size_t)n * 6 + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; }
            else if (c < 0x20) { *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = HEX[c >> 4]; *o++ = HEX[c & 15]; }
            else *o++ = (char)c;
            continue;
        }
        uint32_t cp = (c < 0xA0) ? CP1252_80[c - 0x80] : c;
        if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* ---- numbers and temporals -------------------------------------------------------------------- */

static int add_double_repr(Buf *b, double d) {
    if (!isfinite(d))
        return ADD_LIT(b, "null");
    char *s = PyOS_double_to_string(d, 'r', 0, 0, NULL);
    if (!s)
        return -1;
    int rc = buf_add(b, s, strlen(s));
    PyMem_Free(s);
    return rc;
}

static int add_float32(Buf *b, float f) {
    if (!isfinite(f))
        return ADD_LIT(b, "null");
    for (int prec = 6; prec <= 9; prec++) {
        char *s = PyOS_double_to_string((double)f, 'g', prec, 0, NULL);
        if (!s)
            return -1;
        if (strtof(s, NULL) == f || prec == 9) {
            int rc = buf_add(b, s, strlen(s));
            PyMem_Free(s);
            return rc;
        }
        PyMem_Free(s);
    }
    return 0;
}

static const int DIG2BYTES[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

static int decimal_size(int precision, int scale) {
    int intg = precision - scale;
    return (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9];
}

static int add_decimal(Buf *b, const unsigned char *src, int precision, int scale) {
    unsigned char raw[40];
    char text[100], *o = text;
    int size = decimal_size(precision, scale), intg = precision - scale, p = 0;
    memcpy(raw, src, (size_t)size);
    int negative = !(raw[0] & 0x80);
    raw[0] ^= 0x80;
    if (negative)
        for (int i = 0; i < size; i++)
            raw[i] ^= 0xFF;
    int lead = DIG2BYTES[intg % 9];
    if (lead) {
        o = digits(o, be(raw, lead), intg % 9);
        p += lead;
    }
    for (int g = 0; g < intg / 9; g++, p += 4)
        o = digits(o, be(raw + p, 4), 9);
    char *start = text;
    while (start < o && *start == '0')
        start++;
    if (ADD_LIT(b, "\"") < 0 || (negative && ADD_LIT(b, "-") < 0))
        return -1;
    if (start == o) {
        if (ADD_LIT(b, "0") < 0)
            return -1;
    } else if (buf_add(b, start, (size_t)(o - start)) < 0) {
        return -1;
    }
    if (scale) {
        o = text;
        *o++ = '.';
        for (int g = 0; g < scale / 9; g++, p += 4)
            o = digits(o, be(raw + p, 4), 9);
        if (scale % 9)
            o = digits(o, be(raw + p, DIG2BYTES[scale % 9]), scale % 9);
        if (buf_add(b, text, (size_t)(o - text)) < 0)
            return -1;
    }
    return ADD_LIT(b, "\"");
}

static int frac_len(int fsp) { return (fsp + 1) / 2; }

static long long read_frac(const unsigned char *p, int fsp) {
    if (fsp <= 0) return 0;
    if (fsp <= 2) return (long long)p[0] * 10000;
    if (fsp <= 4) return (long long)be(p, 2) * 100;
    return (long long)be(p, 3);
}

static int add_fraction(Buf *b, long long usec, int fsp) {
    if (fsp <= 0)
        return 0;
    char tmp[8];
    tmp[0] = '.';
    digits(tmp + 1, (unsigned long long)usec, 6);
    return buf_add(b, tmp, (size_t)fsp + 1);
}

static int add_time2(Buf *b, const unsigned char *p, int fsp) {
    long long packed;
    if (fsp >= 5) {
        packed = (long long)be(p, 6) - 0x800000000000LL;
    } else {
        long long intpart = (long long)be(p, 3) - 0x800000LL;
        if (fsp == 0) {
            packed = intpart * (1LL << 24);
        } else {
            long long frac, width, scale;
            if (fsp <= 2) { frac = p[3]; width = 0x100; scale = 10000; }
            else { frac = (long long)be(p + 3, 2); width = 0x10000; scale = 100; }
            if (intpart < 0 && frac) { intpart += 1; frac -= width; }
            packed = intpart * (1LL << 24) + frac * scale;
        }
    }
    const char *sign = "";
    if (packed < 0) { sign = "-"; packed = -packed; }
    long long hms = packed >> 24, usec = packed % (1LL << 24);
    long long hour = (hms >> 12) % (1 << 10);
    char tmp[24], *o = tmp;
    *o++ = '"';
    if (*sign) *o++ = '-';
    o = digits(o, (unsigned long long)hour, hour >= 1000 ? 4 : hour >= 100 ? 3 : 2); *o++ = ':';
    o = digits(o, (unsigned long long)((hms >> 6) % 64), 2); *o++ = ':';
    o = digits(o, (unsigned long long)(hms % 64), 2);
    return buf_add(b, tmp, (size_t)(o - tmp)) < 0 || add_fraction(b, usec, fsp) < 0 || ADD_LIT(b, "\"");
}

static int add_datetime2(Buf *b, const unsigned char *p, int fsp) {
    long long intpart = (long long)be(p, 5) - 0x8000000000LL;
    long long usec = read_frac(p + 5, fsp);
    if (intpart < 0) intpart = -intpart;
    long long ymd = intpart >> 17, ym = ymd >> 5, hms = intpart % (1 << 17);
    char tmp[24], *o = tmp;
    *o++ = '"';
    o = digits(o, (unsigned long long)(ym / 13), 4); *o++ = '-';
    o = digits(o, (unsigned long long)(ym % 13), 2); *o++ = '-';
    o = digits(o, (unsigned long long)(ymd % 32), 2); *o++ = ' ';
    o = digits(o, (unsigned long long)(hms >> 12), 2); *o++ = ':';
    o = digits(o, (unsigned long long)((hms >> 6) % 64), 2); *o++ = ':';
    o = digits(o, (unsigned long long)(hms % 64), 2);
    return buf_add(b, tmp, (size_t)(o - tmp)) < 0 || add_fraction(b, usec, fsp) < 0 || ADD_LIT(b, "\"");
}

static int add_timestamp2(Buf *b, const unsigned char *p, int fsp) {
    long long seconds = (long long)be(p, 4), usec = read_frac(p + 4, fsp);
    char tmp[48];
    int n;
    if (seconds == 0 && usec == 0) {
        n = snprintf(tmp, sizeof tmp, "\"0000-00-00 00:00:00");
    } else {
        long long z = seconds / 86400 + 719468, sod = seconds % 86400;
        long long era = (z >= 0 ? z : z - 146096) / 146097, doe = z - era * 146097;
        long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365, y = yoe + era * 400;
        long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        long long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        y += (m <= 2);
        char *o = tmp;
        *o++ = '"';
        o = digits(o, (unsigned long long)y, 4); *o++ = '-';
        o = digits(o, (unsigned long long)m, 2); *o++ = '-';
        o = digits(o, (unsigned long long)d, 2); *o++ = ' ';
        o = digits(o, (unsigned long long)(sod / 3600), 2); *o++ = ':';
        o = digits(o, (unsigned long long)(sod / 60 % 60), 2); *o++ = ':';
        o = digits(o, (unsigned long long)(sod % 60), 2);
        n = (int)(o - tmp);
    }
    return buf_add(b, tmp, (size_t)n) < 0 || add_fraction(b, usec, fsp) < 0 || ADD_LIT(b, "\"");
}

/* ---- one value -------------------------------------------------------------------------------- */

static int length_prefixed(Reader *r, int width, const unsigned char **data, Py_ssize_t *n) {
    if (width < 1 || width > 4 || need(r, width) < 0)
        return -1;
    *n = (Py_ssize_t)le(r->p + r->pos, width);
    r->pos += width;
    if (need(r, *n) < 0)
        return -1;
    *data = r->p + r->pos;
    r->pos += *n;
    return 0;
}

static int add_value(Buf *b, Reader *r, const Column *c) {
    const unsigned char *s;
    Py_ssize_t n;
    int fsp = (int)c->meta;
    switch (c->kind) {
    case K_NULL:
        return ADD_LIT(b, "null");
    case K_INT8: case K_UINT8: case K_INT16: case K_UINT16: case K_INT24: case K_UINT24:
    case K_INT32: case K_UINT32: case K_INT64: case K_UINT64: {
        static const int sizes[] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 8, 8};
        int size = sizes[c->kind];
        if (need(r, size) < 0) return -1;
        uint64_t v = le(r->p + r->pos, size);
        r->pos += size;
        if (c->kind % 2 == 0)  /* the unsigned kinds are even */
            return add_uint(b, v);
        int bits = size * 8;
        long long sv = (bits == 64) ? (long long)v : ((v >> (bits - 1)) & 1 ? (long long)v - (1LL << bits) : (long long)v);
        return add_int(b, sv);
    }
    case K_FLOAT: {
        float f;
        if (need(r, 4) < 0) return -1;
        memcpy(&f, r->p + r->pos, 4);
        r->pos += 4;
        return add_float32(b, f);
    }
    case K_DOUBLE: {
        double d;
        if (need(r, 8) < 0) return -1;
        memcpy(&d, r->p + r->pos, 8);
        r->pos += 8;
        return add_double_repr(b, d);
    }
    case K_DECIMAL: {
        int precision = (int)(c->meta >> 8), scale = (int)(c->meta & 0xFF);
        if (precision < 1 || precision > 65 || scale > 30 || scale > precision) {
            PyErr_Format(PyExc_ValueError, "DECIMAL(%d,%d) is not a valid precision and scale", precision, scale);
            return -1;
        }
        int size = decimal_size(precision, scale);
        if (need(r, size) < 0) return -1;
        r->pos += size;
        return add_decimal(b, r->p + r->pos - size, precision, scale);
    }
    case K_DATE: {
        if (need(r, 3) < 0) return -1;
        uint64_t v = le(r->p + r->pos, 3);
        r->pos += 3;
        char tmp[16], *o = tmp;
        *o++ = '"';
        o = digits(o, v >> 9, 4); *o++ = '-';
        o = digits(o, (v >> 5) & 15, 2); *o++ = '-';
        o = digits(o, v & 31, 2); *o++ = '"';
        return buf_add(b, tmp, (size_t)(o - tmp));
    }
    case K_TIME2:
        if (need(r, 3 + frac_len(fsp)) < 0) return -1;
        r->pos += 3 + frac_len(fsp);
        return add_time2(b, r->p + r->pos - 3 - frac_len(fsp), fsp);
    case K_DATETIME2:
        if (need(r, 5 + frac_len(fsp)) < 0) return -1;
        r->pos += 5 + frac_len(fsp);
        return add_datetime2(b, r->p + r->pos - 5 - frac_len(fsp), fsp);
    case K_TIMESTAMP2:
        if (need(r, 4 + frac_len(fsp)) < 0) return -1;
        r->pos += 4 + frac_len(fsp);
        return add_timestamp2(b, r->p + r->pos - 4 - frac_len(fsp), fsp);
    case K_YEAR: {
        if (need(r, 1) < 0) return -1;
        unsigned v = r->p[r->pos++];
        return add_uint(b, v ? v + 1900 : 0);
    }
    case K_UTF8:
        if (length_prefixed(r, (int)c->meta, &s, &n) < 0) return -1;
        if (valid_utf8(s, n))
            return add_escaped_ascii_or_utf8(b, s, n);
        return add_undecoded(b, s, n, c->extra);
    case K_LATIN1:
        if (length_prefixed(r, (int)c->meta, &s, &n) < 0) return -1;
        return add_latin1(b, s, n);
    case K_BINARY:
        if (length_prefixed(r, (int)c->meta, &s, &n) < 0) return -1;
        return add_base64(b, s, n);
    case K_BINARY_PAD: {
        if (length_prefixed(r, (int)c->meta, &s, &n) < 0) return -1;
        Py_ssize_t pad = PyLong_AsSsize_t(c->extra);
        if (pad < 0 && PyErr_Occurred()) return -1;
        if (n >= pad) return add_base64(b, s, n);
        unsigned char *tmp = PyMem_Calloc((size_t)pad, 1);
        if (!tmp) { PyErr_NoMemory(); return -1; }
        memcpy(tmp, s, (size_t)n);
        int rc = add_base64(b, tmp, pad);
        PyMem_Free(tmp);
        return rc;
    }
    case K_ENUM: {
        if (need(r, (int)c->meta) < 0) return -1;
        uint64_t v = le(r->p + r->pos, (int)c->meta);
        r->pos += c->meta;
        if (c->extra != Py_None && (Py_ssize_t)v < PyTuple_GET_SIZE(c->extra)) {
            PyObject *label = PyTuple_GET_ITEM(c->extra, (Py_ssize_t)v);
            return buf_add(b, PyBytes_AS_STRING(label), (size_t)PyBytes_GET_SIZE(label));
        }
        return add_uint(b, v);
    }
    case K_SET: {
        if (need(r, (int)c->meta) < 0) return -1;
        uint64_t v = le(r->p + r->pos, (int)c->meta);
        r->pos += c->meta;
        if (c->extra == Py_None)
            return add_uint(b, v);
        if (ADD_LIT(b, "\"") < 0) return -1;
        int first = 1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(c->extra) && i < 64; i++) {
            if (!((v >> i) & 1)) continue;
            PyObject *label = PyTuple_GET_ITEM(c->extra, i);
            if ((!first && ADD_LIT(b, ",") < 0) ||
                buf_add(b, PyBytes_AS_STRING(label), (size_t)PyBytes_GET_SIZE(label)) < 0)
                return -1;
            first = 0;
        }
        return ADD_LIT(b, "\"");
    }
    case K_BIT: {
        if (need(r, (int)c->meta) < 0) return -1;
        uint64_t v = be(r->p + r->pos, (int)c->meta);
        r->pos += c->meta;
        return add_uint(b, v);
    }
    case K_GEOMETRY: {
        if (length_prefixed(r, (int)c->meta, &s, &n) < 0) return -1;
        uint64_t srid = n >= 4 ? le(s, 4) : 0;
        if (n >= 4) { s += 4; n -= 4; }
        return ADD_LIT(b, "{\"srid\":") < 0 || add_uint(b, srid) < 0 || ADD_LIT(b, ",\"wkb\":") < 0 ||
               add_base64(b, s, n) < 0 || ADD_LIT(b, "}");
    }
    case K_FALLBACK: {
        PyObject *res = PyObject_CallFunction(c->extra, "On", r->rows, r->pos);
        if (!res) return -1;
        PyObject *text;
        Py_ssize_t pos;
        if (!PyArg_ParseTuple(res, "Sn", &text, &pos)) { Py_DECREF(res); return -1; }
        int rc = (pos > r->end) ? (need(r, pos - r->pos)) : buf_add(b, PyBytes_AS_STRING(text), (size_t)PyBytes_GET_SIZE(text));
        r->pos = pos;
        Py_DECREF(res);
        return rc;
    }
    }
    PyErr_Format(PyExc_ValueError, "unknown column kind %d", c->kind);
    return -1;
}

/* One image as a JSON object; spans[i] records where column i's value text is (for the key). */
static int add_image(Buf *b, Reader *r, const Column *cols, Py_ssize_t ncols, const unsigned char *bits,
                     Py_ssize_t *span_start, Py_ssize_t *span_len) {
    Py_ssize_t present = 0;
    for (Py_ssize_t i = 0; i < ncols; i++)
        present += (bits[i >> 3] >> (i & 7)) & 1;
    Py_ssize_t null_bytes = (present + 7) / 8;
    if (need(r, null_bytes) < 0)
        return -1;
    const unsigned char *nulls = r->p + r->pos;
    r->pos += null_bytes;
    if (ADD_LIT(b, "{") < 0)
        return -1;
    Py_ssize_t bit = 0;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        span_start[i] = -1;
        if (!((bits[i >> 3] >> (i & 7)) & 1))
            continue;
        if ((bit && ADD_LIT(b, ",") < 0) || buf_add(b, cols[i].name, (size_t)cols[i].name_len) < 0)
            return -1;
        span_start[i] = (Py_ssize_t)b->len;
        if ((nulls[bit >> 3] >> (bit & 7)) & 1) {
            if (ADD_LIT(b, "null") < 0) return -1;
        } else if (add_value(b, r, &cols[i]) < 0) {
            return -1;
        }
        span_len[i] = (Py_ssize_t)b->len - span_start[i];
        bit++;
    }
    return ADD_LIT(b, "}");
}

static PyObject *rows_json(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *rows, *plan, *pk, *keys = Py_None;
    int op;
    Py_buffer before_bits, after_bits, head, tail;
    if (!PyArg_ParseTuple(args, "SiO!y*y*Oy*y*|O", &rows, &op, &PyTuple_Type, &plan, &before_bits, &after_bits, &pk,
                          &head, &tail, &keys))
        return NULL;
    if (keys != Py_None && !PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "keys must be a list or None");
        PyBuffer_Release(&before_bits);
        PyBuffer_Release(&after_bits);
        PyBuffer_Release(&head);
        PyBuffer_Release(&tail);
        return NULL;
    }
    Py_ssize_t ncols = PyTuple_GET_SIZE(plan);
    Column *cols = PyMem_Calloc((size_t)ncols + 1, sizeof(Column));
    Py_ssize_t *spans = PyMem_Calloc((size_t)ncols * 4 + 1, sizeof(Py_ssize_t));
    Buf out = {0}, row = {0};
    PyObject *result = NULL;
    if (!cols || !spans) {
        PyErr_NoMemory();
        goto done;
    }
    if (before_bits.len * 8 < ncols || after_bits.len * 8 < ncols) {
        PyErr_SetString(PyExc_ValueError, "columns-present bitmap shorter than the plan");
        goto done;
    }
    for (Py_ssize_t i = 0; i < ncols; i++) {
        PyObject *item = PyTuple_GET_ITEM(plan, i);
        PyObject *name;
        if (!PyArg_ParseTuple(item, "ilSO", &cols[i].kind, &cols[i].meta, &name, &cols[i].extra))
            goto done;
        if (cols[i].kind < 0 || cols[i].kind >= K_COUNT) {
            PyErr_Format(PyExc_ValueError, "unknown column kind %d", cols[i].kind);
            goto done;
        }
        cols[i].name = PyBytes_AS_STRING(name);
        cols[i].name_len = PyBytes_GET_SIZE(name);
    }
    Reader r = {(const unsigned char *)PyBytes_AS_STRING(rows), 0, PyBytes_GET_SIZE(rows), rows};
    Py_ssize_t *bstart = spans, *blen = spans + ncols, *astart = spans + 2 * ncols, *alen = spans + 3 * ncols;
    while (r.pos < r.end) {
        /* images into `row` first: the key (which comes first in the line) is copied from them */
        row.len = 0;
        size_t before_at = 0, before_end = 0, after_at = 0, after_end = 0;
        if (op != 0) {
            if (add_image(&row, &r, cols, ncols, before_bits.buf, bstart, blen) < 0) goto done;
            before_end = row.len;
        }
        if (op != 2) {
            after_at = row.len;
            if (add_image(&row, &r, cols, ncols, op == 1 ? after_bits.buf : before_bits.buf, astart, alen) < 0)
                goto done;
            after_end = row.len;
        }
        Py_ssize_t *kstart = op == 2 ? bstart : astart, *klen = op == 2 ? blen : alen;
        size_t key_at = op == 2 ? before_at : after_at, key_end = op == 2 ? before_end : after_end;
        if (buf_add(&out, head.buf, (size_t)head.len) < 0 || ADD_LIT(&out, "\"pk\":") < 0) goto done;
        size_t pk_at = out.len;
        if (pk == Py_None) {
            if (ADD_LIT(&out, "null") < 0) goto done;
        } else if (PyTuple_GET_SIZE(pk) == 0) {
            if (buf_add(&out, row.data + key_at, key_end - key_at) < 0) goto done;
        } else {
            if (ADD_LIT(&out, "{") < 0) goto done;
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(pk); k++) {
                Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(pk, k));
                if (i < 0 || i >= ncols) {
                    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "key column outside the plan");
                    goto done;
                }
                if ((k && ADD_LIT(&out, ",") < 0) || buf_add(&out, cols[i].name, (size_t)cols[i].name_len) < 0)
                    goto done;
                if (kstart[i] < 0 ? ADD_LIT(&out, "null") < 0 : buf_add(&out, row.data + kstart[i], (size_t)klen[i]) < 0)
                    goto done;
            }
            if (ADD_LIT(&out, "}") < 0) goto done;
        }
        if (keys != Py_None) {
            PyObject *key = PyBytes_FromStringAndSize(out.data + pk_at, (Py_ssize_t)(out.len - pk_at));
            if (!key || PyList_Append(keys, key) < 0) {
                Py_XDECREF(key);
                goto done;
            }
            Py_DECREF(key);
        }
        if (ADD_LIT(&out, ",\"before\":") < 0 ||
            (op == 0 ? ADD_LIT(&out, "null") : buf_add(&out, row.data + before_at, before_end - before_at)) < 0 ||
            ADD_LIT(&out, ",\"after\":") < 0 ||
            (op == 2 ? ADD_LIT(&out, "null") : buf_add(&out, row.data + after_at, after_end - after_at)) < 0 ||
            buf_add(&out, tail.buf, (size_t)tail.len) < 0)
            goto done;
    }
    result = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
done:
    PyMem_Free(cols);
    PyMem_Free(spans);
    PyMem_Free(out.data);
    PyMem_Free(row.data);
    PyBuffer_Release(&before_bits);
    PyBuffer_Release(&after_bits);
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    return result;
}

static PyMethodDef methods[] = {
    {"rows_json", rows_json, METH_VARARGS, "rows_json(rows, op, plan, before_bits, after_bits, pk, head, tail[, keys]) -> bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", "Rows events to binhub JSON lines.", -1, methods};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }
