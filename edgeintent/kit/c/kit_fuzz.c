/* Fuzz driver for the kit (build it with -fsanitize=address,undefined -fno-sanitize-recover=all).
 *
 *   kit_fuzz SPEC SEQUENCES SPECS SEED
 *
 * 1. SEQUENCES random event sequences through a kit loaded from SPEC: every stream of the spec, values
 *    drawn from ordinary, extreme and invalid ones (NaN, inf, out of 0..1, negative, huge, denormal),
 *    strings from empty to long, missing, non-UTF-8; timestamps mostly increasing, sometimes
 *    decreasing or out of range; windows at random decision times. Checked after every window: the
 *    length is within max_len, every real slot's ids lie in 1..cardinality-1 and its age is positive,
 *    every padded slot is 0.
 * 2. SPECS corrupted copies of SPEC (flipped bytes, truncation, insertions, deletions, a rewritten
 *    body; half of them with the header's length and checksum fixed up so the parser's own checks are
 *    reached): kit_open must refuse them with a message, or load them (a harmless change) and then
 *    survive a short sequence.
 * Prints a JSON summary; exits 1 on a broken invariant (the sanitizers abort on any memory or UB error).
 */
#include "kit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state;

static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static uint32_t below(uint32_t n) { return n ? (uint32_t)(next() % n) : 0u; }
static double unit(void) { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }

static double value(void) {
    switch (below(16)) {
    case 0: return 0.0;
    case 1: return -0.0;
    case 2: return 1.0;
    case 3: return 1e300;
    case 4: return -1e300;
    case 5: return 5e-324;
    case 6: return NAN;
    case 7: return INFINITY;
    case 8: return -INFINITY;
    case 9: return -1.0;
    case 10: return 1.0000000000000002;
    case 11: return (double)(int64_t)next();
    default: return unit();
    }
}

static char strings[4][300];
static const char *text(int slot) {
    static const char *const words[] = {"swipe", "tap", "home", "view", "buy", "cart", "fav", "", "__unseen__", "product_detail"};
    uint32_t n, i;
    switch (below(6)) {
    case 0: return NULL;
    case 1: /* random bytes (not UTF-8), no NUL */
        n = below(299);
        for (i = 0; i < n; i++) strings[slot][i] = (char)(1 + below(255));
        strings[slot][n] = '\0';
        return strings[slot];
    default: return words[below(sizeof words / sizeof words[0])];
    }
}

static int64_t ts_now;
static int64_t timestamp(void) {
    switch (below(20)) {
    case 0: return -1 - (int64_t)below(1000);
    case 1: return 253402300799999LL + (int64_t)below(3);
    case 2: return ts_now - (int64_t)below(5000); /* out of order */
    case 3: return (int64_t)(next() >> 1);
    default: ts_now += (int64_t)below(3) * (int64_t)below(100000); return ts_now;
    }
}

static unsigned long long events, windows, violations;

static int check_window(const kit *k, int s, int rc, int32_t len, const int32_t *ids, const int64_t *ages) {
    uint32_t ml = kit_max_len(k, s), nf = kit_n_features(k, s), i, j;
    if (rc != KIT_OK) return 0;
    if (len < 0 || (uint32_t)len > ml) return fprintf(stderr, "length %d outside 0..%u\n", len, ml), 1;
    for (i = 0; i < ml; i++)
        for (j = 0; j < nf; j++) {
            int32_t id = ids[i * nf + j];
            if (i < (uint32_t)len ? (id < 1 || (uint32_t)id >= kit_cardinality(k, s, j)) : id != 0)
                return fprintf(stderr, "stream %d slot %u feature %u: id %d (cardinality %u, length %d)\n", s, i, j, id,
                               kit_cardinality(k, s, j), len), 1;
        }
    for (i = 0; i < ml; i++)
        if (i < (uint32_t)len ? ages[i] <= 0 : ages[i] != 0)
            return fprintf(stderr, "stream %d slot %u: age %lld (length %d)\n", s, i, (long long)ages[i], len), 1;
    return 0;
}

static void sequence(kit *k, uint32_t n_events, int32_t *ids, int64_t *ages) {
    uint32_t i;
    int s;
    kit_reset(k);
    ts_now = (int64_t)below(2000000000) * 1000;
    for (i = 0; i < n_events; i++) {
        s = (int)below(KIT_N_STREAMS);
        if (s == KIT_GESTURE) {
            kit_gesture e;
            e.ts_ms = timestamp();
            e.kind = text(0);
            e.page = text(1);
            e.orientation = below(4) ? (int64_t)below(4) : (int64_t)next();
            e.x0 = below(8) ? unit() : value(); e.y0 = below(8) ? unit() : value();
            e.x1 = below(8) ? unit() : value(); e.y1 = below(8) ? unit() : value();
            e.duration_ms = below(4) ? unit() * 1000 : value(); e.vx = below(4) ? unit() * 5 : value();
            e.vy = below(4) ? -unit() * 5 : value(); e.pressure = below(4) ? unit() : value();
            e.size = below(4) ? unit() : value();
            kit_push_gesture(k, &e);
        } else if (s == KIT_CLICK) {
            kit_click e;
            e.ts_ms = timestamp();
            e.widget = text(0);
            e.page = text(1);
            kit_push_click(k, &e);
        } else {
            kit_cloud e;
            e.ts_ms = timestamp();
            e.action = text(0);
            e.item_id = (int64_t)next();
            e.category_id = below(2) ? (int64_t)below(100) : (int64_t)next();
            e.price = below(4) ? unit() * 100 : value();
            kit_push_cloud(k, &e);
        }
        events++;
        if (below(8) == 0) {
            int32_t len = -1;
            int64_t t = below(10) ? ts_now + 1 - (int64_t)below(3000) : timestamp();
            int rc;
            s = (int)below(KIT_N_STREAMS + 1) - (below(10) == 0); /* sometimes an absent or invalid stream */
            rc = kit_window(k, s, t, ids, &len, ages);
            windows++;
            if (kit_has_stream(k, s) && check_window(k, s, rc, len, ids, ages)) violations++;
        }
    }
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *fh = fopen(path, "rb");
    uint8_t *buf = NULL;
    long size;
    if (fh == NULL) return NULL;
    if (fseek(fh, 0, SEEK_END) == 0 && (size = ftell(fh)) >= 0 && fseek(fh, 0, SEEK_SET) == 0) {
        buf = (uint8_t *)malloc((size_t)size + 1u);
        if (buf != NULL && fread(buf, 1, (size_t)size, fh) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)size;
    }
    fclose(fh);
    return buf;
}

static void put32(uint8_t *p, uint32_t v) {
    int i;
    for (i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int main(int argc, char **argv) {
    char err[KIT_ERR_LEN];
    size_t spec_len = 0, most = 0;
    uint8_t *spec, *bad;
    kit *k;
    unsigned long n_seq, n_specs, i, rejected = 0, accepted = 0;
    int s;
    int32_t *ids;
    int64_t *ages;
    if (argc != 5) {
        fprintf(stderr, "usage: kit_fuzz SPEC SEQUENCES SPECS SEED\n");
        return 2;
    }
    spec = slurp(argv[1], &spec_len);
    n_seq = strtoul(argv[2], NULL, 10);
    n_specs = strtoul(argv[3], NULL, 10);
    state = strtoull(argv[4], NULL, 10);
    if (spec == NULL || (k = kit_open(spec, spec_len, (uint32_t)below(8), err, sizeof err)) == NULL) {
        fprintf(stderr, "kit_fuzz: cannot load %s\n", argv[1]);
        return 2;
    }
    for (s = 0; s < KIT_N_STREAMS; s++)
        if ((size_t)kit_max_len(k, s) * kit_n_features(k, s) > most) most = (size_t)kit_max_len(k, s) * kit_n_features(k, s);
    ids = (int32_t *)malloc(sizeof(int32_t) * (most + 1u));
    ages = (int64_t *)malloc(sizeof(int64_t) * (most + 1u));
    for (i = 0; i < n_seq; i++) sequence(k, below(4) ? below(200) : below(1200), ids, ages);
    kit_close(k);

    bad = (uint8_t *)malloc(spec_len * 2u + 64u);
    for (i = 0; i < n_specs; i++) {
        size_t n = spec_len, j, at, m;
        memcpy(bad, spec, spec_len);
        switch (below(5)) {
        case 0: /* flipped bytes */
            for (j = 0, at = 1 + below(8); j < at; j++) bad[below((uint32_t)n)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* truncated */
            n = below((uint32_t)spec_len);
            break;
        case 2: /* bytes inserted */
            at = below((uint32_t)n);
            j = 1 + below(32);
            memmove(bad + at + j, bad + at, n - at);
            for (m = 0; m < j; m++) bad[at + m] = (uint8_t)next();
            n += j;
            break;
        case 3: /* bytes deleted */
            at = below((uint32_t)n);
            j = 1 + below(16);
            if (at + j > n) j = n - at;
            memmove(bad + at, bad + at + j, n - at - j);
            n -= j;
            break;
        default: /* a random value in a random field-sized place */
            at = 16 + below((uint32_t)(n > 24 ? n - 24 : 1));
            for (j = 0; j < 8 && at + j < n; j++) bad[at + j] = (uint8_t)next();
            break;
        }
        if (below(2) && n >= 16) { /* fix the header up: the parser's own checks must catch it */
            put32(bad + 8, (uint32_t)(n - 16));
            put32(bad + 12, kit_crc32(bad + 16, n - 16));
        }
        k = kit_open(bad, n, (uint32_t)below(4), err, sizeof err);
        if (k == NULL) {
            if (err[0] == '\0') {
                fprintf(stderr, "spec %lu refused without a message\n", i);
                violations++;
            }
            rejected++;
        } else {
            size_t need = 0;
            int32_t *ids2;
            int64_t *ages2;
            accepted++;
            for (s = 0; s < KIT_N_STREAMS; s++)
                if ((size_t)kit_max_len(k, s) * kit_n_features(k, s) > need) need = (size_t)kit_max_len(k, s) * kit_n_features(k, s);
            ids2 = (int32_t *)malloc(sizeof(int32_t) * (need + 1u));
            ages2 = (int64_t *)malloc(sizeof(int64_t) * (need + 1u));
            sequence(k, below(100), ids2, ages2);
            free(ids2);
            free(ages2);
            kit_close(k);
        }
    }
    printf("{\"sequences\": %lu, \"events\": %llu, \"windows\": %llu, \"specs\": %lu, \"specs_rejected\": %lu, "
           "\"specs_accepted\": %lu, \"violations\": %llu}\n",
           n_seq, events, windows, n_specs, rejected, accepted, violations);
    free(bad);
    free(ids);
    free(ages);
    free(spec);
    return violations ? 1 : 0;
}
