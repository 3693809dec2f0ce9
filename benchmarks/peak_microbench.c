/* Single-core peak check for benchmarks/limits.py (AVX-512 VNNI CPUs only).
 *
 * Prints one JSON line: the core clock measured with a chain of dependent 1-cycle `add`s, and the
 * multiply-accumulates per second of 12 independent VPDPBUSD zmm (64 u8 x s8 MACs each) and
 * VFMADD zmm (16 fp32 MACs each) chains: enough independent work to fill every pipe, so the rates
 * are what the core can issue, an upper bound for any real kernel.
 *
 *     gcc -O2 -mavx512f -mavx512vnni -mfma -o peak peak_microbench.c && ./peak
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

__attribute__((noinline)) long chain(long n, long x) {
    for (long i = 0; i < n; i++) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    return x;
}

#define TWELVE(OP) OP(a0); OP(a1); OP(a2); OP(a3); OP(a4); OP(a5); OP(a6); OP(a7); OP(a8); OP(a9); OP(a10); OP(a11)
#define KEEP __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), \
                                   "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11))

__attribute__((noinline)) int vnni(long n) {
    __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
            a9 = a0, a10 = a0, a11 = a0, b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);
#define DP(a) a = _mm512_dpbusd_epi32(a, b, c)
    for (long i = 0; i < n; i++) { TWELVE(DP); KEEP; }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
    return _mm512_reduce_add_epi32(s);
}

__attribute__((noinline)) float fmas(long n) {
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
           a9 = a0, a10 = a0, a11 = a0, b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
#define FM(a) a = _mm512_fmadd_ps(a, b, c)
    for (long i = 0; i < n; i++) { TWELVE(FM); KEEP; }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

int main(void) {
    const long n = 50000000, m = 20000000;
    double clock = 1e9, tv = 1e9, tf = 1e9, t;
    volatile long s1; volatile int s2; volatile float s3;
    for (int r = 0; r < 5; r++) {  /* best of 5: the machine may be shared */
        t = now(); s1 = chain(n, r); t = now() - t; if (t < clock) clock = t;
        t = now(); s2 = vnni(m); t = now() - t; if (t < tv) tv = t;
        t = now(); s3 = fmas(m); t = now() - t; if (t < tf) tf = t;
    }
    (void)s1; (void)s2; (void)s3;
    printf("{\"clock_ghz\": %.3f, \"int8_gmacs\": %.1f, \"fp32_gmacs\": %.1f}\n",
           4.0 * n / clock / 1e9, m * 12.0 * 64 / tv / 1e9, m * 12.0 * 16 / tf / 1e9);
    return 0;
}
