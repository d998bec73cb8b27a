/* CRC-32C (Castagnoli), shared by the extensions that include it (_redo.c, _pages.c): SSE4.2's
 * crc32 instruction where the CPU has it, else a table. Each extension calls crc32c_init() once
 * when its module loads. */
#ifndef BINHUB_CRC32C_H
#define BINHUB_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t crc32c_table[256];
static int have_sse42 = 0;

static void crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc32c_table_update(uint32_t c, const uint8_t *p, size_t n) {
    while (n--)
        c = crc32c_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_update(uint32_t c, const uint8_t *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

/* CRC-32C of p[0:n] continuing from crc (0 to start), as google_crc32c.extend(crc, data). */
static uint32_t crc32c_extend(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (have_sse42)
        return ~crc32c_hw_update(c, p, n);
#endif
    return ~crc32c_table_update(c, p, n);
}

static uint32_t crc32c(const uint8_t *p, size_t n) {
    return crc32c_extend(0, p, n);
}

#endif
