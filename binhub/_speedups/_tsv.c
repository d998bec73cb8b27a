/* The logical dump's row loop in C: text-protocol row packets, as the server sends a plain SELECT's
 * result, turned into the lines LOAD DATA reads back (tab between fields, newline after a row; NULL
 * as \N; backslash, tab, newline and NUL escaped by a backslash), with no Python object per value.
 * The pure-Python twin is binhub.backup.logical.tsv (the tests compare the two).
 *
 * rows_to_tsv(buf, pos, columns, fields, max_rows, out) -> (pos, rows, status, last)
 *   buf       bytes-like holding whole or partial packets (4-byte header + payload) from pos on
 *   columns   how many leading fields of a row go into the line; fields: how many a row has (the
 *             ones after columns are extras, e.g. the key's literals for the next keyset page)
 *   max_rows  stop after this many rows
 *   out       a bytearray the lines are appended to (no copy of them is made on the way)
 *   status    0 the next packet is not all in buf; 1 the result's EOF packet was read (pos after
 *             it); 2 max_rows were converted; 3 the next packet is 16 MiB or longer (its payload goes
 *             on in the next packets: the caller joins them and calls row_to_tsv); 4 the next packet
 *             is an ERR packet (pos at it)
 *   last      the extras of the last row converted (a tuple of bytes or None), None if no row
 * row_to_tsv(payload, columns, fields, out) -> last: one row's payload, its line appended to out
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_PAYLOAD 0xFFFFFF
enum { NEED_MORE = 0, END = 1, FULL = 2, LARGE = 3, ERROR = 4 };

/* Lines appended to a bytearray: its size runs ahead of len while rows are written (bytearray's
 * own over-allocation makes the growth amortized); done() sets it to len. */
typedef struct {
    PyObject *array;
    char *data;
    Py_ssize_t start, len;
} Out;

static int begin(Out *out, PyObject *array) {
    if (!PyByteArray_Check(array)) {
        PyErr_SetString(PyExc_TypeError, "out must be a bytearray");
        return -1;
    }
    out->array = array;
    out->start = out->len = PyByteArray_GET_SIZE(array);
    out->data = PyByteArray_AS_STRING(array);
    return 0;
}

static int reserve(Out *out, Py_ssize_t more) {
    if (out->len + more > PyByteArray_GET_SIZE(out->array)) {
        if (PyByteArray_Resize(out->array, out->len + more) < 0)
            return -1;
        out->data = PyByteArray_AS_STRING(out->array);
    }
    return 0;
}

/* The lines written (ok) or none of them (a failure): the bytearray ends where they do. */
static int done(Out *out, int ok) {
    return PyByteArray_Resize(out->array, ok ? out->len : out->start);
}

/* A length-encoded field at p[*off] (end: the payload's end): its bytes in *value/*n, or *value NULL
 * for SQL NULL. -1: the field runs past the payload. */
static int next_field(const uint8_t *p, Py_ssize_t end, Py_ssize_t *off, const uint8_t **value, Py_ssize_t *n) {
    Py_ssize_t i = *off;
    if (i >= end)
        return -1;
    uint8_t first = p[i++];
    uint64_t len;
    if (first == 0xFB) {
        *value = NULL;
        *off = i;
        return 0;
    }
    if (first < 0xFB) {
        len = first;
    } else {
        int width = first == 0xFC ? 2 : first == 0xFD ? 3 : first == 0xFE ? 8 : -1;
        if (width < 0 || i + width > end)
            return -1;
        len = 0;
        for (int k = width - 1; k >= 0; k--)
            len = len << 8 | p[i + k];
        i += width;
    }
    if (len > (uint64_t)(end - i))
        return -1;
    *value = p + i;
    *n = (Py_ssize_t)len;
    *off = i + (Py_ssize_t)len;
    return 0;
}

/* The bytes that take a backslash in a line, and the letter after it (0: none). */
static const char ESCAPE_AS[256] = {[0] = '0', ['\t'] = 't', ['\n'] = 'n', ['\\'] = '\\'};

static void put_escaped(Out *out, const uint8_t *v, Py_ssize_t n) {
    char *w = out->data + out->len;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char letter = ESCAPE_AS[v[i]];
        if (letter) { /* most values have none: the runs between are copied whole */
            memcpy(w, v + start, (size_t)(i - start));
            w += i - start;
            *w++ = '\\';
            *w++ = letter;
            start = i + 1;
        }
    }
    memcpy(w, v + start, (size_t)(n - start));
    w += n - start;
    out->len = w - out->data;
}

/* One row's payload as a line into out. */
static int convert_row(Out *out, const uint8_t *p, Py_ssize_t plen, Py_ssize_t columns, Py_ssize_t fields) {
    if (reserve(out, 2 * plen + 2 * columns + 2) < 0)
        return -1;
    Py_ssize_t off = 0;
    for (Py_ssize_t f = 0; f < fields; f++) {
        const uint8_t *value;
        Py_ssize_t n = 0;
        if (next_field(p, plen, &off, &value, &n) < 0) {
            PyErr_Format(PyExc_ValueError, "a row packet of %zd bytes ends inside its field %zd", plen, f + 1);
            return -1;
        }
        if (f >= columns)
            continue;
        if (f)
            out->data[out->len++] = '\t';
        if (value == NULL) {
            out->data[out->len++] = '\\';
            out->data[out->len++] = 'N';
        } else {
            put_escaped(out, value, n);
        }
    }
    if (off != plen) {
        PyErr_Format(PyExc_ValueError, "a row packet of %zd bytes has more than %zd fields", plen, fields);
        return -1;
    }
    out->data[out->len++] = '\n';
    return 0;
}

/* The extras (fields after columns) of a row already checked by convert_row. */
static PyObject *extras(const uint8_t *p, Py_ssize_t plen, Py_ssize_t columns, Py_ssize_t fields) {
    PyObject *tuple = PyTuple_New(fields - columns);
    if (tuple == NULL)
        return NULL;
    Py_ssize_t off = 0;
    for (Py_ssize_t f = 0; f < fields; f++) {
        const uint8_t *value;
        Py_ssize_t n = 0;
        next_field(p, plen, &off, &value, &n);
        if (f < columns)
            continue;
        PyObject *item;
        if (value == NULL) {
            item = Py_NewRef(Py_None);
        } else if ((item = PyBytes_FromStringAndSize((const char *)value, n)) == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, f - columns, item);
    }
    return tuple;
}

static int check_counts(Py_ssize_t columns, Py_ssize_t fields) {
    if (columns < 1 || fields < columns) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= columns <= fields");
        return -1;
    }
    return 0;
}

static PyObject *rows_to_tsv(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, columns, fields, max_rows;
    PyObject *array;
    if (!PyArg_ParseTuple(args, "y*nnnnO", &view, &pos, &columns, &fields, &max_rows, &array))
        return NULL;
    const uint8_t *buf = view.buf;
    Py_ssize_t size = view.len;
    Out out;
    Py_ssize_t rows = 0;
    int status = FULL;
    const uint8_t *last = NULL;
    Py_ssize_t last_len = 0;
    PyObject *result = NULL;
    if (begin(&out, array) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (check_counts(columns, fields) < 0)
        goto finish;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos is outside buf");
        goto finish;
    }
    while (rows < max_rows) {
        if (size - pos < 4) {
            status = NEED_MORE;
            break;
        }
        Py_ssize_t plen = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16;
        if (plen == MAX_PAYLOAD) {
            status = LARGE;
            break;
        }
        if (size - pos - 4 < plen) {
            status = NEED_MORE;
            break;
        }
        const uint8_t *p = buf + pos + 4;
        if (plen > 0 && p[0] == 0xFE && plen < 9) {
            pos += 4 + plen;
            status = END;
            break;
        }
        if (plen > 0 && p[0] == 0xFF) {
            status = ERROR;
            break;
        }
        if (convert_row(&out, p, plen, columns, fields) < 0)
            goto finish;
        last = p;
        last_len = plen;
        rows++;
        pos += 4 + plen;
    }
    PyObject *tail = last == NULL || columns == fields ? Py_NewRef(Py_None) : extras(last, last_len, columns, fields);
    if (tail != NULL)
        result = Py_BuildValue("(nniN)", pos, rows, status, tail);
finish:
    if (done(&out, result != NULL) < 0)
        Py_CLEAR(result);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *row_to_tsv(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t columns, fields;
    PyObject *array;
    if (!PyArg_ParseTuple(args, "y*nnO", &view, &columns, &fields, &array))
        return NULL;
    Out out;
    PyObject *result = NULL;
    if (begin(&out, array) == 0) {
        if (check_counts(columns, fields) == 0 && convert_row(&out, view.buf, view.len, columns, fields) == 0)
            result = columns == fields ? Py_NewRef(Py_None) : extras(view.buf, view.len, columns, fields);
        if (done(&out, result != NULL) < 0)
            Py_CLEAR(result);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"rows_to_tsv", rows_to_tsv, METH_VARARGS, "Text-protocol row packets to LOAD DATA lines."},
    {"row_to_tsv", row_to_tsv, METH_VARARGS, "One row's payload to a LOAD DATA line."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tsv", NULL, -1, methods};

PyMODINIT_FUNC PyInit__tsv(void) { return PyModule_Create(&module); }
