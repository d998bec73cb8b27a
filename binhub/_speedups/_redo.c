/* The redo copier's hot loop in C: walk the mini-transactions at the front of a buffer of
 * MariaDB 10.8+ redo log, checking each one's sequence bit and CRC-32C, exactly as
 * binhub.innodb.redo.scan_mtrs does (its pure-Python twin, which the tests compare it with).
 *
 * scan_mtrs(buf, lsn, first_lsn, capacity, nonce, limit) -> (ends, sequence_positions, stop)
 *   buf        bytes-like, its first byte at LSN lsn
 *   first_lsn, capacity   the ring (the sequence bit of an LSN: !((lsn - first_lsn) / capacity & 1));
 *              capacity 0 means a log that never wraps (sequence bit always 1)
 *   nonce      8 when the log is encrypted (a nonce between end byte and CRC), else 0
 *   limit      stop once this many bytes are covered (-1: no limit)
 *   stop       0 end of log, 1 incomplete, 2 bad checksum, 3 malformed (ScanStop, in that order)
 *
 * CRC-32C: _crc32c.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_crc32c.h"

#define MTR_SIZE_MAX (1u << 20)
#define MIN_2BYTE 0x80u
#define MIN_3BYTE (MIN_2BYTE + (1u << 14))
#define MIN_4BYTE (MIN_3BYTE + (1u << 21))
#define MIN_5BYTE (MIN_4BYTE + (1u << 28))

enum { STOP_END = 0, STOP_INCOMPLETE = 1, STOP_BAD_CHECKSUM = 2, STOP_MALFORMED = 3 };

static unsigned varint_length(uint8_t first) {
    unsigned length = 1;
    while (first & 0x80) {
        length++;
        first = (uint8_t)(first << 1);
    }
    return length;
}

/* mlog_decode_varint; -1 when invalid. The caller made sure the bytes are there. */
static int64_t decode_varint(const uint8_t *b) {
    uint32_t first = b[0];
    if (first < MIN_2BYTE)
        return first;
    if (first < 0xC0)
        return MIN_2BYTE + ((first & 0x3F) << 8 | b[1]);
    if (first < 0xE0)
        return MIN_3BYTE + ((first & 0x1F) << 16 | (uint32_t)b[1] << 8 | b[2]);
    if (first < 0xF0)
        return (int64_t)MIN_4BYTE + ((first & 0x0F) << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    if (first == 0xF0) {
        uint32_t value = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
        if (value <= 0xFFFFFFFFu - MIN_5BYTE)
            return (int64_t)MIN_5BYTE + value;
    }
    return -1;
}

static inline int sequence_bit(uint64_t lsn, uint64_t first_lsn, uint64_t capacity) {
    if (!capacity)
        return 1;
    return ((lsn - first_lsn) / capacity) & 1 ? 0 : 1;
}

/* One mtr at buf[pos]: >= 0 its end (and *seq its end byte's offset), or -(stop + 1). */
static Py_ssize_t mtr_end(const uint8_t *buf, Py_ssize_t size, Py_ssize_t pos, uint64_t lsn, uint64_t first_lsn,
                          uint64_t capacity, Py_ssize_t nonce, Py_ssize_t *seq) {
    if (pos >= size)
        return -(STOP_INCOMPLETE + 1);
    if (buf[pos] <= 1)
        return -(STOP_END + 1);
    Py_ssize_t at = pos;
    uint64_t total = 0;
    for (;;) {
        if (at >= size)
            return -(STOP_INCOMPLETE + 1);
        if (total >= MTR_SIZE_MAX)
            return -(STOP_MALFORMED + 1);
        uint8_t first = buf[at];
        if (first <= 1)
            break;
        uint64_t rlen = first & 0xF;
        at++;
        if (!rlen) {
            if (at >= size || at + (Py_ssize_t)varint_length(buf[at]) >= size)
                return -(STOP_INCOMPLETE + 1);
            int64_t extra = decode_varint(buf + at);
            if (extra < 0 || (uint64_t)extra >= MTR_SIZE_MAX)
                return -(STOP_MALFORMED + 1);
            rlen = (uint64_t)extra + 15;
        }
        at += (Py_ssize_t)rlen;
        total += rlen;
    }
    if (buf[at] != sequence_bit(lsn + (uint64_t)(at - pos), first_lsn, capacity))
        return -(STOP_END + 1);
    Py_ssize_t end = at + 1 + nonce + 4;
    if (end > size)
        return -(STOP_INCOMPLETE + 1);
    uint32_t crc;
    if (nonce) {
        /* CRC over the records, then the nonce (the end byte is left out). */
        uint32_t c = 0xFFFFFFFFu;
        c = crc32c_table_update(c, buf + pos, (size_t)(at - pos));
        c = crc32c_table_update(c, buf + at + 1, (size_t)nonce);
        crc = c ^ 0xFFFFFFFFu;
    } else {
        crc = crc32c(buf + pos, (size_t)(at - pos));
    }
    const uint8_t *s = buf + at + 1 + nonce;
    uint32_t stored = (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 8 | s[3];
    if (crc != stored)
        return -(STOP_BAD_CHECKSUM + 1);
    *seq = at;
    return end;
}

static PyObject *scan_mtrs(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan_mtrs(buf, lsn, first_lsn, capacity, nonce, limit)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned long long lsn = PyLong_AsUnsignedLongLong(args[1]);
    unsigned long long first_lsn = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long capacity = PyLong_AsUnsignedLongLong(args[3]);
    Py_ssize_t nonce = PyLong_AsSsize_t(args[4]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    PyObject *ends = NULL, *seqs = NULL;
    if (PyErr_Occurred())
        goto fail;
    ends = PyList_New(0);
    seqs = PyList_New(0);
    if (!ends || !seqs)
        goto fail;
    const uint8_t *buf = view.buf;
    Py_ssize_t size = view.len, pos = 0;
    int stop = STOP_END;
    while (limit < 0 || pos < limit) {
        Py_ssize_t seq = 0;
        Py_ssize_t found = mtr_end(buf, size, pos, lsn + (uint64_t)pos, first_lsn, capacity, nonce, &seq);
        if (found < 0) {
            stop = (int)(-found - 1);
            break;
        }
        PyObject *e = PyLong_FromSsize_t(found), *q = PyLong_FromSsize_t(seq);
        if (!e || !q || PyList_Append(ends, e) < 0 || PyList_Append(seqs, q) < 0) {
            Py_XDECREF(e);
            Py_XDECREF(q);
            goto fail;
        }
        Py_DECREF(e);
        Py_DECREF(q);
        pos = found;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(NNi)", ends, seqs, stop);
fail:
    Py_XDECREF(ends);
    Py_XDECREF(seqs);
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *py_crc32c(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t c = crc32c(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"scan_mtrs", (PyCFunction)(void (*)(void))scan_mtrs, METH_FASTCALL,
     "Walk the mini-transactions at the front of a redo buffer (see binhub.innodb.redo.scan_mtrs)."},
    {"crc32c", py_crc32c, METH_O, "CRC-32C (Castagnoli) of a bytes-like object."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "binhub._speedups._redo", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__redo(void) {
    crc32c_init();
    return PyModule_Create(&module);
}
