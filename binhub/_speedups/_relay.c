/* The relay's per-event loops in C: the twin of binhub/_speedups/pure.py (same arguments, same
 * results, same tests). Plain CPython C API, no other library, so the build needs nothing but a
 * compiler and the Python headers. The CRC32 (zlib's polynomial) folds with carry-less
 * multiplication on x86-64 (VPCLMULQDQ with AVX-512, else PCLMULQDQ) and falls back to a
 * slicing-by-8 table elsewhere: the relay checks every event's CRC, and this keeps that at
 * 0.04-0.1 s per GB on the default install (BINHUB_NO_AVX512=1 keeps it to PCLMULQDQ).
 *
 * frame_dump: frame binlog dump packets out of a received chunk (the protocol's hot path).
 * frame_events: frame a span of a binlog file as dump packets (the binlog server's hot path).
 * scan_batch: type bytes, "Python must look at this one" marks and the CRC check of a batch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PACKET_PAYLOAD 0xFFFFFF
#define OK_HEADER 0x00
#define SEMISYNC_MAGIC 0xEF
#define SEMISYNC_NEED_ACK 0x01
#define ARTIFICIAL 0x20
#define EVENT_HEADER_SIZE 19
#define CRC32_RESIDUE 0x2144DF1Cu
/* Events at least this long are copied into a bytes object of their own only below this size:
 * larger ones stay zero-copy memoryview slices (a 40 MiB row event must not be copied twice). */
#define COPY_LIMIT 16384

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xFF] ^ (c >> 8);
            crc_table[t][i] = c;
        }
    }
}

/* Slicing-by-8 over the raw CRC register (not inverted): short events, and the tails the
 * folding loop leaves. Little-endian loads: the targets are x86 and ARM. */
static uint32_t crc32_table_update(uint32_t c, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) {
        c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_CLMUL_PATH 1
/* Carry-less multiplication folding (Intel, "Fast CRC Computation for Generic Polynomials Using
 * PCLMULQDQ", 2009). A 128-bit lane is folded forward by D bits with the constants
 * reflect32(x^(D+32) mod P) << 1 (low qword) and reflect32(x^(D-32) mod P) << 1 (high qword), P
 * being zlib's CRC-32 polynomial; then a Barrett reduction gives the CRC. Checked once at import:
 * PCLMULQDQ (every x86-64 since 2010) folds four 128-bit lanes, 64 bytes per round (~10 GB/s);
 * VPCLMULQDQ with AVX-512 (Ice Lake, Zen 4 and later) four 512-bit registers, 256 bytes per round.
 * c is the raw CRC register; n % 16 == 0. */
#define FOLD_512_LO 0x0154442bd4 /* D = 512 */
#define FOLD_512_HI 0x01c6e41596
#define FOLD_128_LO 0x01751997d0 /* D = 128 */
#define FOLD_128_HI 0x00ccaa009e
#define FOLD_2048_LO 0x011542778a /* D = 2048 */
#define FOLD_2048_HI 0x01322d1430

__attribute__((target("pclmul,sse4.1"))) static inline __m128i fold128(__m128i x, __m128i k, __m128i next) {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

/* The folded lane x, then the 16-byte blocks left at p (n of them), reduced to the raw CRC register. */
__attribute__((target("pclmul,sse4.1"))) static inline uint32_t crc32_clmul_finish(__m128i x1, const unsigned char *p,
                                                                                      size_t n) {
    const __m128i k3k4 = _mm_set_epi64x(FOLD_128_HI, FOLD_128_LO);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124);
    const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
    __m128i x2, x3;
    for (; n >= 16; p += 16, n -= 16)
        x1 = fold128(x1, k3k4, _mm_loadu_si128((const __m128i *)p));
    /* 128 bits to 64, then Barrett reduction to 32. */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x3 = _mm_setr_epi32(~0, 0, ~0, 0);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, x3), k5k0, 0x00), x2);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, x3), poly, 0x10);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, x3), poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}

/* n >= 64. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_clmul_update(uint32_t c, const unsigned char *p,
                                                                               size_t n) {
    const __m128i k1k2 = _mm_set_epi64x(FOLD_512_HI, FOLD_512_LO);
    const __m128i k3k4 = _mm_set_epi64x(FOLD_128_HI, FOLD_128_LO);
    __m128i x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)c));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 0x10));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 0x20));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 0x30));
    for (p += 64, n -= 64; n >= 64; p += 64, n -= 64) {
        x1 = fold128(x1, k1k2, _mm_loadu_si128((const __m128i *)(p + 0x00)));
        x2 = fold128(x2, k1k2, _mm_loadu_si128((const __m128i *)(p + 0x10)));
        x3 = fold128(x3, k1k2, _mm_loadu_si128((const __m128i *)(p + 0x20)));
        x4 = fold128(x4, k1k2, _mm_loadu_si128((const __m128i *)(p + 0x30)));
    }
    x1 = fold128(fold128(fold128(x1, k3k4, x2), k3k4, x3), k3k4, x4);
    return crc32_clmul_finish(x1, p, n);
}

#define AVX512_TARGET "avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1"
__attribute__((target(AVX512_TARGET))) static inline __m512i fold512(__m512i x, __m512i k, __m512i next) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11),
                                     next, 0x96); /* a ^ b ^ c */
}

/* n >= 256. */
__attribute__((target(AVX512_TARGET))) static uint32_t crc32_vpclmul_update(uint32_t c, const unsigned char *p,
                                                                           size_t n) {
    const __m512i k2048 = _mm512_set_epi64(FOLD_2048_HI, FOLD_2048_LO, FOLD_2048_HI, FOLD_2048_LO, FOLD_2048_HI,
                                           FOLD_2048_LO, FOLD_2048_HI, FOLD_2048_LO);
    const __m512i k512 = _mm512_set_epi64(FOLD_512_HI, FOLD_512_LO, FOLD_512_HI, FOLD_512_LO, FOLD_512_HI,
                                          FOLD_512_LO, FOLD_512_HI, FOLD_512_LO);
    const __m128i k3k4 = _mm_set_epi64x(FOLD_128_HI, FOLD_128_LO);
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                                  _mm512_inserti32x4(_mm512_setzero_si512(), _mm_cvtsi32_si128((int)c), 0));
    __m512i x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128);
    __m512i x3 = _mm512_loadu_si512(p + 192);
    for (p += 256, n -= 256; n >= 256; p += 256, n -= 256) {
        x0 = fold512(x0, k2048, _mm512_loadu_si512(p));
        x1 = fold512(x1, k2048, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k2048, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k2048, _mm512_loadu_si512(p + 192));
    }
    /* Four registers into one (each 64 bytes before the next), then its four lanes into one. */
    x3 = fold512(fold512(fold512(x0, k512, x1), k512, x2), k512, x3);
    __m128i a = _mm512_extracti32x4_epi32(x3, 0);
    a = fold128(a, k3k4, _mm512_extracti32x4_epi32(x3, 1));
    a = fold128(a, k3k4, _mm512_extracti32x4_epi32(x3, 2));
    a = fold128(a, k3k4, _mm512_extracti32x4_epi32(x3, 3));
    return crc32_clmul_finish(a, p, n);
}
#endif

/* Which carry-less multiplication the CPU offers (set at import). */
static enum { CRC_TABLE, CRC_CLMUL, CRC_VPCLMUL } crc_method;
/* Below these the next simpler method is as fast: folding has a fixed cost (the reductions). */
#define CLMUL_MIN 128
#define VPCLMUL_MIN 512

/* zlib-compatible crc32(data) (initial value 0). */
static uint32_t crc32_bytes(const unsigned char *p, Py_ssize_t len) {
    uint32_t c = 0xFFFFFFFFu;
    size_t n = (size_t)len;
#ifdef HAVE_CLMUL_PATH
    if (crc_method != CRC_TABLE && n >= CLMUL_MIN) {
        size_t folded = n & ~(size_t)15;
        c = crc_method == CRC_VPCLMUL && n >= VPCLMUL_MIN ? crc32_vpclmul_update(c, p, folded)
                                                         : crc32_clmul_update(c, p, folded);
        p += folded;
        n -= folded;
    }
#endif
    return crc32_table_update(c, p, n) ^ 0xFFFFFFFFu;
}

static PyObject *py_crc32(PyObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t c = crc32_bytes(b.buf, b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(c);
}

static inline uint32_t u32le(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* One event out of the chunk: a bytes copy when small (cheaper to make, to join and to hash
 * than a memoryview), a slice of the chunk's memoryview when large. */
static PyObject *make_event(PyObject *view, const char *base, Py_ssize_t start, Py_ssize_t stop) {
    if (stop - start < COPY_LIMIT)
        return PyBytes_FromStringAndSize(base + start, stop - start);
    return PySequence_GetSlice(view, start, stop);
}

/* frame_dump(view, pos, seq, check_seq, limit, semisync, events) -> (pos, seq, ack)
 * Appends every complete, ordinary dump packet from pos on to events (without the OK byte and
 * the semi-sync header); stops at the first packet it cannot take (partial, >= limit, not OK,
 * empty, bad sequence id) and returns where that one starts. */
static PyObject *frame_dump(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "frame_dump() takes 7 arguments");
        return NULL;
    }
    PyObject *view = args[0];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long seq = PyLong_AsLong(args[2]);
    int check_seq = PyObject_IsTrue(args[3]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[4]);
    int semisync = PyObject_IsTrue(args[5]);
    PyObject *events = args[6];
    if (PyErr_Occurred())
        return NULL;
    if (!PyList_Check(events)) {
        PyErr_SetString(PyExc_TypeError, "frame_dump() needs a list for events");
        return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(view, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = b.buf;
    Py_ssize_t end = b.len;
    int ack = 0;
    while (end - pos >= 4) {
        uint32_t header = u32le(p + pos);
        Py_ssize_t length = header & MAX_PACKET_PAYLOAD;
        Py_ssize_t stop = pos + 4 + length;
        if (stop > end)
            break;
        if (!length || length >= limit || p[pos + 4] != OK_HEADER || (check_seq && (long)(header >> 24) != seq))
            break;
        seq = (seq + 1) & 0xFF;
        Py_ssize_t start = pos + 5;
        if (semisync && length > 2 && p[pos + 5] == SEMISYNC_MAGIC) {
            if (p[pos + 6] & SEMISYNC_NEED_ACK)
                ack = 1;
            start = pos + 7;
        }
        PyObject *ev = make_event(view, b.buf, start, stop);
        if (ev == NULL || PyList_Append(events, ev) < 0) {
            Py_XDECREF(ev);
            PyBuffer_Release(&b);
            return NULL;
        }
        Py_DECREF(ev);
        pos = stop;
    }
    PyBuffer_Release(&b);
    return Py_BuildValue("(nlO)", pos, seq, ack ? Py_True : Py_False);
}

/* frame_events(data, seq, drop_type) -> (wire bytes, packets, events, consumed, nbytes)
 * Every complete event at the start of data as one payload (0x00 event) in packets of
 * (len, seq, bytes), split at 0xFFFFFF; events of type drop_type left out; stops before a cut-off
 * event. Two passes: find the boundaries and the output size, then copy once into the result. */
static PyObject *frame_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "frame_events() takes 3 arguments");
        return NULL;
    }
    long seq = PyLong_AsLong(args[1]);
    long drop_type = PyLong_AsLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = b.buf;
    Py_ssize_t end = b.len, pos = 0, packets = 0, events = 0, nbytes = 0;
    while (end - pos >= EVENT_HEADER_SIZE) {
        Py_ssize_t size = u32le(p + pos + 9);
        if (size < EVENT_HEADER_SIZE) {
            PyBuffer_Release(&b);
            return PyErr_Format(PyExc_ValueError, "corrupt event header at offset %zd (declared size %zd)", pos, size);
        }
        if (size > end - pos)
            break;
        if (p[pos + 4] != drop_type) {
            events++;
            nbytes += size;
            packets += (size + 1) / MAX_PACKET_PAYLOAD + 1;
        }
        pos += size;
    }
    Py_ssize_t consumed = pos;
    PyObject *out = PyBytes_FromStringAndSize(NULL, nbytes + events + 4 * packets);
    if (out == NULL) {
        PyBuffer_Release(&b);
        return NULL;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    for (pos = 0; pos < consumed;) {
        Py_ssize_t size = u32le(p + pos + 9);
        if (p[pos + 4] != drop_type) {
            /* The payload is 0x00 + event: `at` counts payload bytes, the event's start at 1. */
            Py_ssize_t total = size + 1, at = 0;
            for (;;) {
                Py_ssize_t chunk = total - at < MAX_PACKET_PAYLOAD ? total - at : MAX_PACKET_PAYLOAD;
                o[0] = chunk & 0xFF;
                o[1] = (chunk >> 8) & 0xFF;
                o[2] = (chunk >> 16) & 0xFF;
                o[3] = seq & 0xFF;
                o += 4;
                seq = (seq + 1) & 0xFF;
                Py_ssize_t from = at, to = at + chunk;
                if (from == 0 && to > 0) {
                    *o++ = OK_HEADER;
                    from = 1;
                }
                memcpy(o, p + pos + from - 1, to - from);
                o += to - from;
                at = to;
                if (chunk < MAX_PACKET_PAYLOAD)
                    break;
            }
        }
        pos += size;
    }
    PyBuffer_Release(&b);
    return Py_BuildValue("(Nnnnn)", out, packets, events, consumed, nbytes);
}

/* scan_batch(batch, slow_table, check_crc) -> (types, marks, crc_ok)
 * types: each event's type byte; marks: 1 where slow_table marks the type or the event is
 * artificial; crc_ok: every event followed by its own valid CRC32 (check_crc false: not checked,
 * False). An event too short for its type or flags byte raises IndexError, as indexing would. */
static PyObject *scan_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan_batch() takes 3 arguments");
        return NULL;
    }
    PyObject *batch = args[0];
    if (!PyList_Check(batch)) {
        PyErr_SetString(PyExc_TypeError, "scan_batch() needs a list");
        return NULL;
    }
    int check = PyObject_IsTrue(args[2]);
    if (check < 0)
        return NULL;
    Py_buffer tb;
    if (PyObject_GetBuffer(args[1], &tb, PyBUF_SIMPLE) < 0)
        return NULL;
    if (tb.len != 256) {
        PyBuffer_Release(&tb);
        PyErr_SetString(PyExc_ValueError, "slow_table must be 256 bytes");
        return NULL;
    }
    const unsigned char *table = tb.buf;
    Py_ssize_t count = PyList_GET_SIZE(batch);
    PyObject *types = PyBytes_FromStringAndSize(NULL, count);
    PyObject *marks = PyBytes_FromStringAndSize(NULL, count);
    if (types == NULL || marks == NULL)
        goto fail;
    unsigned char *t = (unsigned char *)PyBytes_AS_STRING(types);
    unsigned char *m = (unsigned char *)PyBytes_AS_STRING(marks);
    int crc_ok = check;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *ev = PyList_GET_ITEM(batch, i);
        const unsigned char *e;
        Py_ssize_t n;
        Py_buffer eb;
        int release = 0;
        if (PyBytes_CheckExact(ev)) { /* most events: no buffer protocol round trip */
            e = (const unsigned char *)PyBytes_AS_STRING(ev);
            n = PyBytes_GET_SIZE(ev);
        } else {
            if (PyObject_GetBuffer(ev, &eb, PyBUF_SIMPLE) < 0)
                goto fail;
            e = eb.buf;
            n = eb.len;
            release = 1;
        }
        if (n < 18) {
            if (release)
                PyBuffer_Release(&eb);
            PyErr_SetString(PyExc_IndexError, "index out of range");
            goto fail;
        }
        t[i] = e[4];
        m[i] = table[e[4]] || (e[17] & ARTIFICIAL);
        if (crc_ok)
            crc_ok = n >= 4 && crc32_bytes(e, n - 4) == u32le(e + n - 4);
        if (release)
            PyBuffer_Release(&eb);
    }
    PyBuffer_Release(&tb);
    return Py_BuildValue("(NNO)", types, marks, crc_ok ? Py_True : Py_False);
fail:
    PyBuffer_Release(&tb);
    Py_XDECREF(types);
    Py_XDECREF(marks);
    return NULL;
}

static PyMethodDef methods[] = {
    {"frame_dump", (PyCFunction)(void (*)(void))frame_dump, METH_FASTCALL, "Frame dump packets (see pure.py)."},
    {"frame_events", (PyCFunction)(void (*)(void))frame_events, METH_FASTCALL, "Frame binlog events (see pure.py)."},
    {"scan_batch", (PyCFunction)(void (*)(void))scan_batch, METH_FASTCALL, "Scan a batch (see pure.py)."},
    {"crc32", py_crc32, METH_O, "zlib.crc32(data): carry-less multiplication where the CPU has it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "binhub._speedups._relay", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__relay(void) {
    crc_init();
#ifdef HAVE_CLMUL_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1"))
        crc_method = CRC_CLMUL;
    if (crc_method == CRC_CLMUL && __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vl") && getenv("BINHUB_NO_AVX512") == NULL)
        crc_method = CRC_VPCLMUL;
#endif
    static const char *names[] = {"slicing-by-8", "pclmulqdq", "vpclmulqdq-avx512"};
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "CRC32_METHOD", names[crc_method]) < 0)
        Py_CLEAR(m);
    return m;
}
