/* The tablespace copier's page check in C: validate a whole buffer of InnoDB pages in one call,
 * without the GIL, exactly as binhub.innodb.page.page_corruption does page by page (its pure-Python
 * twin, which the tests compare it with). Follows buf_page_is_corrupted() of MariaDB 10.11.
 *
 * first_corrupt_page(buf, page_size, algorithm) -> index of the first page that fails, or -1
 *   buf        bytes-like, a whole number of pages of page_size bytes (the physical size)
 *   algorithm  0 full_crc32, 1 the older layout (crc32, innodb or none in header and trailer),
 *              2 ROW_FORMAT=COMPRESSED pages (the page_zip checksum)
 * crc32c(data, crc=0) -> CRC-32C of data continuing from crc (google_crc32c.extend), without the GIL
 *
 * A page that fails is then described (and re-read) by the Python side: a valid copy is the rule.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_crc32c.h"

#define FIL_PAGE_OFFSET 4
#define FIL_PAGE_LSN 16
#define FIL_PAGE_TYPE 24
#define FIL_PAGE_FILE_FLUSH_LSN 26
#define FIL_PAGE_SPACE_ID 34
#define FIL_PAGE_DATA 38
#define FIL_PAGE_END_LSN_OLD_CHKSUM 8
#define FIL_PAGE_FCRC32_END_LSN 8
#define FIL_PAGE_FCRC32_CHECKSUM 4
#define BUF_NO_CHECKSUM_MAGIC 0xDEADBEEFu
#define UT_HASH_RANDOM_MASK 1463735687u
#define UT_HASH_RANDOM_MASK2 1653893711u
#define RELEASE_GIL_FROM (64 * 1024) /* below this the GIL round trip costs more than it frees */

enum { FULL_CRC32 = 0, LEGACY = 1, PAGE_ZIP = 2 };

static inline uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int all_zero(const uint8_t *p, size_t n) {
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* ut_fold_binary() on a 64-bit ulint, as the server computes it. */
static uint64_t fold_binary(const uint8_t *p, size_t n) {
    uint64_t fold = 0;
    for (size_t i = 0; i < n; i++)
        fold = ((((fold ^ p[i] ^ UT_HASH_RANDOM_MASK2) << 8) + fold) ^ UT_HASH_RANDOM_MASK) + p[i];
    return fold;
}

static int full_crc32_ok(const uint8_t *page, size_t size) {
    uint32_t type = (uint32_t)page[FIL_PAGE_TYPE] << 8 | page[FIL_PAGE_TYPE + 1];
    size_t stored_size = size;
    int compressed = 0;
    if (type & 0x8000u) { /* page-compressed: the type holds the stored size in 256-byte units */
        stored_size = (size_t)(type & 0x7FFFu) << 8;
        if (stored_size >= size || stored_size < FIL_PAGE_DATA + FIL_PAGE_FCRC32_END_LSN)
            return 0;
        compressed = 1;
    }
    uint32_t stored = be32(page + stored_size - FIL_PAGE_FCRC32_CHECKSUM);
    if (stored == 0 && !compressed && all_zero(page, size))
        return 1;
    if (stored != crc32c(page, stored_size - FIL_PAGE_FCRC32_CHECKSUM))
        return 0;
    if (!compressed && be32(page) == 0) /* not encrypted: the torn-page check */
        return be32(page + FIL_PAGE_LSN + 4) == be32(page + size - FIL_PAGE_FCRC32_END_LSN);
    return 1;
}

static int legacy_ok(const uint8_t *page, size_t size) {
    uint32_t lsn_low = be32(page + FIL_PAGE_LSN + 4);
    if (lsn_low != be32(page + size - FIL_PAGE_END_LSN_OLD_CHKSUM + 4))
        return 0;
    uint32_t field1 = be32(page), field2 = be32(page + size - FIL_PAGE_END_LSN_OLD_CHKSUM);
    if (field1 == 0 && field2 == 0 && all_zero(page, size))
        return 1;
    if (field1 == BUF_NO_CHECKSUM_MAGIC && field2 == BUF_NO_CHECKSUM_MAGIC)
        return 1;
    uint32_t crc = crc32c(page + FIL_PAGE_OFFSET, FIL_PAGE_FILE_FLUSH_LSN - FIL_PAGE_OFFSET)
                   ^ crc32c(page + FIL_PAGE_DATA, size - FIL_PAGE_END_LSN_OLD_CHKSUM - FIL_PAGE_DATA);
    if (field1 == crc && field2 == crc)
        return 1;
    uint32_t new_checksum = (uint32_t)(fold_binary(page + FIL_PAGE_OFFSET, FIL_PAGE_FILE_FLUSH_LSN - FIL_PAGE_OFFSET)
                                       + fold_binary(page + FIL_PAGE_DATA,
                                                     size - FIL_PAGE_END_LSN_OLD_CHKSUM - FIL_PAGE_DATA));
    if (field1 != new_checksum)
        return 0;
    /* a trailer equal to the LSN's low bits comes from files older than 4.0.14 */
    return field2 == lsn_low || field2 == (uint32_t)fold_binary(page, FIL_PAGE_FILE_FLUSH_LSN);
}

static int page_zip_ok(const uint8_t *page, size_t size) {
    uint32_t stored = be32(page);
    if (stored == 0 && all_zero(page, size))
        return 1;
    if (stored == BUF_NO_CHECKSUM_MAGIC)
        return 1;
    uint32_t computed = crc32c(page + FIL_PAGE_OFFSET, FIL_PAGE_LSN - FIL_PAGE_OFFSET)
                        ^ crc32c(page + FIL_PAGE_TYPE, 2)
                        ^ crc32c(page + FIL_PAGE_SPACE_ID, size - FIL_PAGE_SPACE_ID);
    return stored == computed;
}

static Py_ssize_t first_bad(const uint8_t *buf, Py_ssize_t len, Py_ssize_t page_size, int algorithm) {
    Py_ssize_t pages = len / page_size;
    for (Py_ssize_t i = 0; i < pages; i++) {
        const uint8_t *page = buf + i * page_size;
        int ok = algorithm == FULL_CRC32 ? full_crc32_ok(page, (size_t)page_size)
                 : algorithm == LEGACY   ? legacy_ok(page, (size_t)page_size)
                                         : page_zip_ok(page, (size_t)page_size);
        if (!ok)
            return i;
    }
    return -1;
}

static PyObject *first_corrupt_page(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "first_corrupt_page(buf, page_size, algorithm)");
        return NULL;
    }
    Py_ssize_t page_size = PyLong_AsSsize_t(args[1]);
    long algorithm = PyLong_AsLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (page_size < 1024 || algorithm < FULL_CRC32 || algorithm > PAGE_ZIP) {
        PyErr_Format(PyExc_ValueError, "page size %zd or algorithm %ld out of range", page_size, algorithm);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len % page_size) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "%zd bytes are not a whole number of %zd-byte pages", view.len, page_size);
        return NULL;
    }
    Py_ssize_t bad;
    if (view.len >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        bad = first_bad(view.buf, view.len, page_size, (int)algorithm);
        Py_END_ALLOW_THREADS
    } else {
        bad = first_bad(view.buf, view.len, page_size, (int)algorithm);
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(bad);
}

static PyObject *py_crc32c(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "crc32c(data, crc=0)");
        return NULL;
    }
    unsigned long crc = nargs == 2 ? PyLong_AsUnsignedLong(args[1]) : 0;
    if (PyErr_Occurred())
        return NULL;
    if (crc > 0xFFFFFFFFul) {
        PyErr_SetString(PyExc_ValueError, "crc must fit in 32 bits");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t c;
    if (view.len >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        c = crc32c_extend((uint32_t)crc, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        c = crc32c_extend((uint32_t)crc, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"first_corrupt_page", (PyCFunction)(void (*)(void))first_corrupt_page, METH_FASTCALL,
     "Index of the first page of a buffer that fails its checksum, or -1 (see binhub.innodb.page)."},
    {"crc32c", (PyCFunction)(void (*)(void))py_crc32c, METH_FASTCALL,
     "CRC-32C of a bytes-like object, continuing from crc (0 to start)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "binhub._speedups._pages", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__pages(void) {
    crc32c_init();
    return PyModule_Create(&module);
}
