/* edgeintent kit: see kit.h. The arithmetic of every feature kind mirrors
 * edgeintent/toolkit/features/encoding.py exactly (float64, IEEE comparisons, no fused multiply-add:
 * build with -ffp-contract=off and without -ffast-math). */
#include "kit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "EIKS"
#define HEADER_LEN 16u
#define PAD_ID 0
#define UNK_ID 1
#define MAX_LEN_LIMIT 100000u
#define SLACK_LIMIT 1000000u
#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
#define MAX_TS_MS 253402300799999LL /* the last millisecond of the year 9999 */
#define MAX_STRING 65536u
/* tan(pi / 8) as Python's math.tan(math.pi / 8) gives it (0x1.a827999fcef32p-2) */
static const double TAN_22_5 = 0.41421356237309503;

enum { K_VOCAB = 1, K_BUCKET = 2, K_HASH = 3, K_SECTOR = 4, K_CELL = 5, K_HOUR = 6 };
enum {
    S_KIND = 1, S_PAGE, S_ORIENTATION, S_DISPLACEMENT, S_DISTANCE, S_DURATION, S_SPEED, S_ABS_VX, S_ABS_VY,
    S_START, S_END, S_PRESSURE, S_SIZE, S_GAP, S_WIDGET, S_ACTION, S_ITEM, S_CATEGORY, S_PRICE, S_TS
};

/* The contract (edgeintent.toolkit.features.spec.STREAM_FEATURES): kind and source of each feature. */
static const uint8_t CONTRACT[KIT_N_STREAMS][14][2] = {
    {{K_VOCAB, S_KIND}, {K_VOCAB, S_PAGE}, {K_VOCAB, S_ORIENTATION}, {K_SECTOR, S_DISPLACEMENT},
     {K_BUCKET, S_DISTANCE}, {K_BUCKET, S_DURATION}, {K_BUCKET, S_SPEED}, {K_BUCKET, S_ABS_VX},
     {K_BUCKET, S_ABS_VY}, {K_CELL, S_START}, {K_CELL, S_END}, {K_BUCKET, S_PRESSURE}, {K_BUCKET, S_SIZE},
     {K_BUCKET, S_GAP}},
    {{K_VOCAB, S_WIDGET}, {K_VOCAB, S_PAGE}, {K_BUCKET, S_GAP}},
    {{K_VOCAB, S_ACTION}, {K_HASH, S_ITEM}, {K_HASH, S_CATEGORY}, {K_BUCKET, S_PRICE}, {K_BUCKET, S_GAP},
     {K_HOUR, S_TS}},
};
static const uint32_t CONTRACT_N[KIT_N_STREAMS] = {14, 3, 6};
static const char *const STREAM_NAMES[KIT_N_STREAMS] = {"gesture", "click", "cloud"};

enum { V_STR = 0, V_INT = 1 };

typedef struct {
    int32_t id; /* 0: empty slot */
    uint8_t type;
    uint32_t len;
    const uint8_t *bytes; /* V_STR: into the kit's copy of the spec */
    int64_t ival;
} vslot;

typedef struct {
    uint8_t kind, source;
    uint32_t card;
    uint32_t n_vocab, mask;
    vslot *slots;
    uint32_t n_edges;
    double *edges;
    uint64_t size, seed;
    double min_distance;
} feature;

typedef struct {
    int present;
    uint32_t max_len, nf, cap;
    feature *f;
    int32_t *ring_ids; /* cap * nf */
    int64_t *ring_ts;  /* cap */
    uint32_t head, count;
    uint64_t pushed;
    int has_prev;
    int64_t prev_ts;
} stream;

struct kit {
    int64_t utc_offset_ms;
    stream s[KIT_N_STREAMS];
    char err[KIT_ERR_LEN];
};

/* ---------------------------------------------------------------------------------------------- */
/* little helpers                                                                                  */

static int fail(char *err, size_t err_len, int code, const char *fmt, ...) {
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

uint32_t kit_crc32(const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int b;
    for (i = 0; i < len; i++) {
        crc ^= p[i];
        for (b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

static uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t fnv1a(uint8_t type, const uint8_t *bytes, size_t len) {
    uint64_t h = 0xCBF29CE484222325ULL;
    size_t i;
    h = (h ^ type) * 0x100000001B3ULL;
    for (i = 0; i < len; i++) h = (h ^ bytes[i]) * 0x100000001B3ULL;
    return h;
}

static void le64(uint8_t out[8], int64_t v) {
    uint64_t u = (uint64_t)v;
    int i;
    for (i = 0; i < 8; i++) out[i] = (uint8_t)(u >> (8 * i));
}

/* ---------------------------------------------------------------------------------------------- */
/* reading spec.bin                                                                                */

typedef struct {
    const uint8_t *p;
    size_t n, off;
    char *err;
    size_t err_len;
    int bad;
} reader;

static int need(reader *r, size_t bytes, const char *what) {
    if (r->bad) return 0;
    if (r->n - r->off < bytes) {
        r->bad = fail(r->err, r->err_len, KIT_E_SPEC, "spec truncated at byte %lu reading %s",
                      (unsigned long)(HEADER_LEN + r->off), what);
        return 0;
    }
    return 1;
}

static uint64_t rd_uint(reader *r, size_t bytes, const char *what) {
    uint64_t v = 0;
    size_t i;
    if (!need(r, bytes, what)) return 0;
    for (i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += bytes;
    return v;
}

static uint8_t rd_u8(reader *r, const char *what) { return (uint8_t)rd_uint(r, 1, what); }
static uint32_t rd_u32(reader *r, const char *what) { return (uint32_t)rd_uint(r, 4, what); }
static uint64_t rd_u64(reader *r, const char *what) { return rd_uint(r, 8, what); }
static int64_t rd_i64(reader *r, const char *what) { return (int64_t)rd_uint(r, 8, what); }
static double rd_f64(reader *r, const char *what) {
    uint64_t u = rd_uint(r, 8, what);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static int bad(reader *r, const char *fmt, ...) {
    if (!r->bad) {
        va_list ap;
        va_start(ap, fmt);
        if (r->err != NULL && r->err_len > 0) vsnprintf(r->err, r->err_len, fmt, ap);
        va_end(ap);
        r->bad = KIT_E_SPEC;
    }
    return 0;
}

/* a bump allocator over the one block; with base == NULL it only measures */
typedef struct {
    uint8_t *base;
    size_t used;
} arena;

static void *take(arena *a, size_t bytes) {
    void *p = NULL;
    a->used = (a->used + 15u) & ~(size_t)15u;
    if (a->base != NULL) p = a->base + a->used;
    a->used += bytes;
    return p;
}

static uint32_t table_cap(uint32_t n) {
    uint32_t cap = 8;
    while (cap < 2u * n) cap <<= 1;
    return cap;
}

static uint32_t cardinality(const feature *f) {
    switch (f->kind) {
    case K_VOCAB: return 2u + f->n_vocab;
    case K_BUCKET: return 3u + f->n_edges;
    case K_HASH: return (uint32_t)(2u + f->size);
    case K_SECTOR: return 10u;
    case K_CELL: return 11u;
    default: return 26u; /* K_HOUR */
    }
}

static int read_vocab(reader *r, feature *f, arena *a, const char *sname, uint32_t j) {
    uint32_t i, n = rd_u32(r, "a vocabulary size");
    if (r->bad) return 0;
    if (n > (r->n - r->off) / 5u) /* an entry takes at least 5 bytes (an empty string) */
        return bad(r, "%s feature %u: vocabulary of %u entries cannot fit the spec", sname, j, n);
    f->n_vocab = n;
    f->mask = table_cap(n) - 1u;
    f->slots = (vslot *)take(a, sizeof(vslot) * (size_t)(f->mask + 1u));
    if (f->slots != NULL) memset(f->slots, 0, sizeof(vslot) * (size_t)(f->mask + 1u));
    for (i = 0; i < n; i++) {
        vslot key;
        uint8_t ib[8];
        uint64_t h;
        memset(&key, 0, sizeof key);
        key.type = rd_u8(r, "a vocabulary entry type");
        if (r->bad) return 0;
        if (key.type == V_STR) {
            key.len = rd_u32(r, "a vocabulary string length");
            if (r->bad) return 0;
            if (key.len > MAX_STRING) return bad(r, "%s feature %u: vocabulary string of %u bytes (at most %u)", sname, j, key.len, MAX_STRING);
            if (!need(r, key.len, "a vocabulary string")) return 0;
            key.bytes = r->p + r->off;
            r->off += key.len;
            h = fnv1a(V_STR, key.bytes, key.len);
        } else if (key.type == V_INT) {
            key.ival = rd_i64(r, "a vocabulary integer");
            if (r->bad) return 0;
            le64(ib, key.ival);
            h = fnv1a(V_INT, ib, 8);
        } else {
            return bad(r, "%s feature %u: vocabulary entry %u has unknown type %u", sname, j, i, key.type);
        }
        if (f->slots != NULL) {
            uint32_t pos = (uint32_t)h & f->mask;
            while (f->slots[pos].id != 0) {
                const vslot *o = &f->slots[pos];
                if (o->type == key.type && o->len == key.len && o->ival == key.ival &&
                    (key.len == 0 || memcmp(o->bytes, key.bytes, key.len) == 0))
                    return bad(r, "%s feature %u: the vocabulary lists a value twice", sname, j);
                pos = (pos + 1u) & f->mask;
            }
            key.id = (int32_t)i + 2;
            f->slots[pos] = key;
        }
    }
    return 1;
}

static int read_feature(reader *r, feature *f, arena *a, int sid, uint32_t j) {
    const char *sname = STREAM_NAMES[sid];
    uint32_t i, card;
    memset(f, 0, sizeof *f);
    f->kind = rd_u8(r, "a feature kind");
    f->source = rd_u8(r, "a feature source");
    card = rd_u32(r, "a feature cardinality");
    if (r->bad) return 0;
    if (f->kind != CONTRACT[sid][j][0] || f->source != CONTRACT[sid][j][1])
        return bad(r, "%s feature %u is kind %u of source %u; the contract has kind %u of source %u", sname, j,
                   f->kind, f->source, CONTRACT[sid][j][0], CONTRACT[sid][j][1]);
    switch (f->kind) {
    case K_VOCAB:
        if (!read_vocab(r, f, a, sname, j)) return 0;
        break;
    case K_BUCKET:
        f->n_edges = rd_u32(r, "a number of bucket edges");
        if (r->bad) return 0;
        if (f->n_edges > (r->n - r->off) / 8u) return bad(r, "%s feature %u: %u bucket edges cannot fit the spec", sname, j, f->n_edges);
        f->edges = (double *)take(a, sizeof(double) * (size_t)f->n_edges);
        for (i = 0; i < f->n_edges; i++) {
            double e = rd_f64(r, "a bucket edge");
            if (r->bad) return 0;
            if (!isfinite(e)) return bad(r, "%s feature %u: bucket edge %u is not finite", sname, j, i);
            if (f->edges != NULL) {
                if (i > 0 && !(f->edges[i - 1] < e)) return bad(r, "%s feature %u: bucket edges must be strictly increasing", sname, j);
                f->edges[i] = e;
            }
        }
        break;
    case K_HASH:
        f->size = rd_u64(r, "a hash size");
        f->seed = rd_u64(r, "a hash seed");
        if (r->bad) return 0;
        if (f->size < 1u || f->size > (uint64_t)INT32_MAX - 2u) return bad(r, "%s feature %u: hash size %llu outside 1..%d", sname, j, (unsigned long long)f->size, INT32_MAX - 2);
        break;
    case K_SECTOR:
        f->min_distance = rd_f64(r, "a minimum distance");
        if (r->bad) return 0;
        if (!isfinite(f->min_distance) || f->min_distance < 0.0) return bad(r, "%s feature %u: min_distance must be finite and >= 0", sname, j);
        break;
    default:
        break;
    }
    if (f->kind == K_VOCAB && f->n_vocab > (uint32_t)INT32_MAX - 2u) return bad(r, "%s feature %u: vocabulary too large", sname, j);
    if (f->kind == K_BUCKET && f->n_edges > (uint32_t)INT32_MAX - 3u) return bad(r, "%s feature %u: too many edges", sname, j);
    if (card != cardinality(f)) return bad(r, "%s feature %u says cardinality %u, its contents give %u", sname, j, card, cardinality(f));
    f->card = card;
    return 1;
}

/* one pass over the spec: measures (a->base == NULL) or fills k */
static int parse(const uint8_t *body, size_t len, uint32_t slack, kit *k, arena *a, char *err, size_t err_len) {
    reader r;
    uint32_t version, n_streams, i, j;
    int seen[KIT_N_STREAMS] = {0, 0, 0};
    r.p = body;
    r.n = len;
    r.off = 0;
    r.err = err;
    r.err_len = err_len;
    r.bad = 0;
    version = rd_u32(&r, "the FeatureSpec version");
    k->utc_offset_ms = rd_i64(&r, "the UTC offset");
    n_streams = rd_u32(&r, "the number of streams");
    if (r.bad) return r.bad;
    if (version != KIT_SPEC_VERSION) return fail(err, err_len, KIT_E_SPEC, "FeatureSpec version %u, this kit reads %u", version, KIT_SPEC_VERSION);
    if (k->utc_offset_ms < -DAY_MS || k->utc_offset_ms > DAY_MS) return fail(err, err_len, KIT_E_SPEC, "UTC offset %lld ms outside one day", (long long)k->utc_offset_ms);
    if (n_streams < 1 || n_streams > KIT_N_STREAMS) return fail(err, err_len, KIT_E_SPEC, "%u streams (1 to 3)", n_streams);
    for (i = 0; i < n_streams; i++) {
        uint8_t sid = rd_u8(&r, "a stream id");
        stream *st;
        uint32_t max_len = rd_u32(&r, "a max_len"), nf = rd_u32(&r, "a number of features");
        if (r.bad) return r.bad;
        if (sid >= KIT_N_STREAMS) return fail(err, err_len, KIT_E_SPEC, "unknown stream id %u", sid);
        if (seen[sid]) return fail(err, err_len, KIT_E_SPEC, "stream %s listed twice", STREAM_NAMES[sid]);
        seen[sid] = 1;
        if (max_len < 1 || max_len > MAX_LEN_LIMIT) return fail(err, err_len, KIT_E_SPEC, "%s max_len %u outside 1..%u", STREAM_NAMES[sid], max_len, MAX_LEN_LIMIT);
        if (nf != CONTRACT_N[sid]) return fail(err, err_len, KIT_E_SPEC, "%s has %u features; the contract has %u", STREAM_NAMES[sid], nf, CONTRACT_N[sid]);
        st = &k->s[sid];
        st->present = 1;
        st->max_len = max_len;
        st->nf = nf;
        st->cap = max_len + slack;
        st->f = (feature *)take(a, sizeof(feature) * nf);
        for (j = 0; j < nf; j++) {
            feature tmp;
            if (!read_feature(&r, st->f != NULL ? &st->f[j] : &tmp, a, sid, j)) return r.bad;
        }
        st->ring_ids = (int32_t *)take(a, sizeof(int32_t) * (size_t)st->cap * nf);
        st->ring_ts = (int64_t *)take(a, sizeof(int64_t) * (size_t)st->cap);
    }
    if (r.off != r.n) return fail(err, err_len, KIT_E_SPEC, "%lu bytes after the last stream", (unsigned long)(r.n - r.off));
    return KIT_OK;
}

kit *kit_open(const void *spec, size_t spec_len, uint32_t slack, char *err, size_t err_len) {
    const uint8_t *p = (const uint8_t *)spec;
    uint32_t format, body_len, crc;
    kit probe, *k;
    arena a;
    uint8_t *block;
    size_t i, kit_bytes;
    int rc;
    if (err != NULL && err_len > 0) err[0] = '\0';
    if (p == NULL) { fail(err, err_len, KIT_E_ARG, "no spec given"); return NULL; }
    if (slack > SLACK_LIMIT) { fail(err, err_len, KIT_E_ARG, "slack %u above %u", slack, SLACK_LIMIT); return NULL; }
    if (spec_len < HEADER_LEN) { fail(err, err_len, KIT_E_SPEC, "spec truncated: %lu bytes, the header alone is %u", (unsigned long)spec_len, HEADER_LEN); return NULL; }
    if (memcmp(p, MAGIC, 4) != 0) { fail(err, err_len, KIT_E_SPEC, "not a kit spec (bad magic)"); return NULL; }
    format = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    body_len = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
    crc = (uint32_t)p[12] | (uint32_t)p[13] << 8 | (uint32_t)p[14] << 16 | (uint32_t)p[15] << 24;
    if (format != KIT_FORMAT_VERSION) { fail(err, err_len, KIT_E_SPEC, "spec format %u, this kit reads %u", format, KIT_FORMAT_VERSION); return NULL; }
    if ((size_t)body_len != spec_len - HEADER_LEN) { fail(err, err_len, KIT_E_SPEC, "spec truncated or padded: header says %u body bytes, got %lu", body_len, (unsigned long)(spec_len - HEADER_LEN)); return NULL; }
    if (kit_crc32(p + HEADER_LEN, body_len) != crc) { fail(err, err_len, KIT_E_SPEC, "spec checksum mismatch (corrupted file)"); return NULL; }

    memset(&probe, 0, sizeof probe);
    a.base = NULL;
    a.used = 0;
    kit_bytes = sizeof(kit);
    take(&a, kit_bytes);
    take(&a, body_len);
    rc = parse(p + HEADER_LEN, body_len, slack, &probe, &a, err, err_len);
    if (rc != KIT_OK) return NULL;

    block = (uint8_t *)calloc(1, a.used + 16u);
    if (block == NULL) { fail(err, err_len, KIT_E_MEMORY, "cannot allocate %lu bytes", (unsigned long)a.used); return NULL; }
    a.base = block;
    a.used = 0;
    k = (kit *)take(&a, kit_bytes);
    {
        uint8_t *copy = (uint8_t *)take(&a, body_len);
        for (i = 0; i < body_len; i++) copy[i] = p[HEADER_LEN + i];
        rc = parse(copy, body_len, slack, k, &a, err, err_len);
    }
    if (rc != KIT_OK) {
        free(block);
        return NULL;
    }
    return k;
}

void kit_close(kit *k) { free(k); /* k is the start of the one block */ }

void kit_reset(kit *k) {
    int s;
    if (k == NULL) return;
    for (s = 0; s < KIT_N_STREAMS; s++) {
        k->s[s].head = 0;
        k->s[s].count = 0;
        k->s[s].pushed = 0;
        k->s[s].has_prev = 0;
        k->s[s].prev_ts = 0;
    }
    k->err[0] = '\0';
}

int kit_has_stream(const kit *k, int s) { return k != NULL && s >= 0 && s < KIT_N_STREAMS && k->s[s].present; }
uint32_t kit_max_len(const kit *k, int s) { return kit_has_stream(k, s) ? k->s[s].max_len : 0u; }
uint32_t kit_n_features(const kit *k, int s) { return kit_has_stream(k, s) ? k->s[s].nf : 0u; }
uint32_t kit_cardinality(const kit *k, int s, uint32_t j) {
    return kit_has_stream(k, s) && j < k->s[s].nf ? k->s[s].f[j].card : 0u;
}
const char *kit_error(const kit *k) { return k == NULL ? "no kit" : k->err; }

const char *kit_status_name(int status) {
    static const char *const names[] = {"ok", "spec", "memory", "stream", "value", "order", "evicted", "arg"};
    return status >= 0 && status <= KIT_E_ARG ? names[status] : "unknown";
}

/* ---------------------------------------------------------------------------------------------- */
/* encoding: edgeintent/toolkit/features/encoding.py                                              */

static int32_t vocab_id(const feature *f, uint8_t type, const uint8_t *bytes, uint32_t len, int64_t ival) {
    uint8_t ib[8];
    uint32_t pos;
    if (type == V_INT) {
        le64(ib, ival);
        pos = (uint32_t)fnv1a(V_INT, ib, 8) & f->mask;
    } else {
        pos = (uint32_t)fnv1a(V_STR, bytes, len) & f->mask;
    }
    while (f->slots[pos].id != 0) {
        const vslot *o = &f->slots[pos];
        if (o->type == type && o->len == len && (type == V_INT ? o->ival == ival : (len == 0 || memcmp(o->bytes, bytes, len) == 0)))
            return o->id;
        pos = (pos + 1u) & f->mask;
    }
    return UNK_ID;
}

static int32_t vocab_str(const feature *f, const char *s) {
    size_t len;
    if (s == NULL) return UNK_ID;
    len = strlen(s);
    if (len > MAX_STRING) return UNK_ID;
    return vocab_id(f, V_STR, (const uint8_t *)s, (uint32_t)len, 0);
}

/* 2 + number of edges <= v (bisect_right); a missing value is 1 */
static int32_t bucket_id(const feature *f, double v, int missing) {
    uint32_t lo = 0, hi = f->n_edges;
    if (missing || isnan(v)) return UNK_ID;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (f->edges[mid] <= v)
            lo = mid + 1u;
        else
            hi = mid;
    }
    return (int32_t)lo + 2;
}

static int32_t hash_id(const feature *f, int64_t value) {
    return (int32_t)(fmix64((uint64_t)value + f->seed) % f->size) + 2;
}

static int32_t sector_id(const feature *f, double dx, double dy, double distance) {
    double ax = fabs(dx), ay = fabs(dy);
    int sector;
    if (distance < f->min_distance) return UNK_ID;
    if (ay <= TAN_22_5 * ax)
        sector = dx >= 0 ? 0 : 4;
    else if (ax <= TAN_22_5 * ay)
        sector = dy < 0 ? 2 : 6;
    else if (dx >= 0)
        sector = dy < 0 ? 1 : 7;
    else
        sector = dy < 0 ? 3 : 5;
    return sector + 2;
}

static int32_t cell_id(double x, double y) {
    int32_t col = (int32_t)(x * 3), row = (int32_t)(y * 3);
    if (col > 2) col = 2;
    if (row > 2) row = 2;
    return 2 + 3 * row + col;
}

static int32_t hour_id(const kit *k, int64_t ts) {
    int64_t local = ts + k->utc_offset_ms;
    int64_t h = local / HOUR_MS;
    if (local % HOUR_MS != 0 && local < 0) h -= 1; /* floor division */
    h %= 24;
    if (h < 0) h += 24;
    return (int32_t)h + 2;
}

static int finite01(double v) { return v >= 0.0 && v <= 1.0; }
static int finite_nonneg(double v) { return isfinite(v) && v >= 0.0; }

/* common part of a push: checks, the next ring slot, the gap */
static int32_t *begin_push(kit *k, int sid, int64_t ts, double *gap, int *no_gap, int *rc) {
    stream *st;
    uint32_t slot;
    if (k == NULL) { *rc = KIT_E_ARG; return NULL; }
    st = &k->s[sid];
    if (!st->present) { *rc = fail(k->err, KIT_ERR_LEN, KIT_E_STREAM, "the spec has no %s stream", STREAM_NAMES[sid]); return NULL; }
    if (ts < 0 || ts > MAX_TS_MS) { *rc = fail(k->err, KIT_ERR_LEN, KIT_E_VALUE, "%s ts_ms %lld outside 0..%lld", STREAM_NAMES[sid], (long long)ts, MAX_TS_MS); return NULL; }
    if (st->has_prev && ts < st->prev_ts) { *rc = fail(k->err, KIT_ERR_LEN, KIT_E_ORDER, "%s event at %lld after one at %lld: push in time order", STREAM_NAMES[sid], (long long)ts, (long long)st->prev_ts); return NULL; }
    *no_gap = !st->has_prev;
    *gap = st->has_prev ? (double)(ts - st->prev_ts) : 0.0;
    slot = st->head;
    *rc = KIT_OK;
    return st->ring_ids + (size_t)slot * st->nf;
}

static void end_push(kit *k, int sid, int64_t ts) {
    stream *st = &k->s[sid];
    st->ring_ts[st->head] = ts;
    st->head = st->head + 1u == st->cap ? 0u : st->head + 1u;
    if (st->count < st->cap) st->count++;
    st->pushed++;
    st->has_prev = 1;
    st->prev_ts = ts;
}

int kit_push_gesture(kit *k, const kit_gesture *e) {
    int rc, no_gap;
    double gap, dx, dy, distance, speed;
    int32_t *out;
    uint32_t j;
    const stream *st;
    if (e == NULL) return KIT_E_ARG;
    if (k != NULL && !(finite01(e->x0) && finite01(e->y0) && finite01(e->x1) && finite01(e->y1) &&
                       finite_nonneg(e->duration_ms) && finite_nonneg(e->pressure) && finite_nonneg(e->size) &&
                       isfinite(e->vx) && isfinite(e->vy)))
        return fail(k->err, KIT_ERR_LEN, KIT_E_VALUE, "gesture at %lld: a value outside the data contract (x/y in 0..1, durations, pressure and size >= 0, all finite)", (long long)e->ts_ms);
    out = begin_push(k, KIT_GESTURE, e->ts_ms, &gap, &no_gap, &rc);
    if (out == NULL) return rc;
    st = &k->s[KIT_GESTURE];
    dx = e->x1 - e->x0;
    dy = e->y1 - e->y0;
    distance = sqrt(dx * dx + dy * dy);
    speed = sqrt(e->vx * e->vx + e->vy * e->vy);
    for (j = 0; j < st->nf; j++) {
        const feature *f = &st->f[j];
        switch (f->source) {
        case S_KIND: out[j] = vocab_str(f, e->kind); break;
        case S_PAGE: out[j] = vocab_str(f, e->page); break;
        case S_ORIENTATION: out[j] = vocab_id(f, V_INT, NULL, 0, e->orientation); break;
        case S_DISPLACEMENT: out[j] = sector_id(f, dx, dy, distance); break;
        case S_DISTANCE: out[j] = bucket_id(f, distance, 0); break;
        case S_DURATION: out[j] = bucket_id(f, e->duration_ms, 0); break;
        case S_SPEED: out[j] = bucket_id(f, speed, 0); break;
        case S_ABS_VX: out[j] = bucket_id(f, fabs(e->vx), 0); break;
        case S_ABS_VY: out[j] = bucket_id(f, fabs(e->vy), 0); break;
        case S_START: out[j] = cell_id(e->x0, e->y0); break;
        case S_END: out[j] = cell_id(e->x1, e->y1); break;
        case S_PRESSURE: out[j] = bucket_id(f, e->pressure, 0); break;
        case S_SIZE: out[j] = bucket_id(f, e->size, 0); break;
        default: out[j] = bucket_id(f, gap, no_gap); break; /* S_GAP */
        }
    }
    end_push(k, KIT_GESTURE, e->ts_ms);
    return KIT_OK;
}

int kit_push_click(kit *k, const kit_click *e) {
    int rc, no_gap;
    double gap;
    int32_t *out;
    const feature *f;
    if (e == NULL) return KIT_E_ARG;
    out = begin_push(k, KIT_CLICK, e->ts_ms, &gap, &no_gap, &rc);
    if (out == NULL) return rc;
    f = k->s[KIT_CLICK].f;
    out[0] = vocab_str(&f[0], e->widget);
    out[1] = vocab_str(&f[1], e->page);
    out[2] = bucket_id(&f[2], gap, no_gap);
    end_push(k, KIT_CLICK, e->ts_ms);
    return KIT_OK;
}

int kit_push_cloud(kit *k, const kit_cloud *e) {
    int rc, no_gap;
    double gap;
    int32_t *out;
    const feature *f;
    if (e == NULL) return KIT_E_ARG;
    if (k != NULL && !finite_nonneg(e->price))
        return fail(k->err, KIT_ERR_LEN, KIT_E_VALUE, "cloud event at %lld: price must be finite and >= 0", (long long)e->ts_ms);
    out = begin_push(k, KIT_CLOUD, e->ts_ms, &gap, &no_gap, &rc);
    if (out == NULL) return rc;
    f = k->s[KIT_CLOUD].f;
    out[0] = vocab_str(&f[0], e->action);
    out[1] = hash_id(&f[1], e->item_id);
    out[2] = hash_id(&f[2], e->category_id);
    out[3] = bucket_id(&f[3], e->price, 0);
    out[4] = bucket_id(&f[4], gap, no_gap);
    out[5] = hour_id(k, e->ts_ms);
    end_push(k, KIT_CLOUD, e->ts_ms);
    return KIT_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* windows: edgeintent/toolkit/features/windows.py (the last max_len events with ts < t)           */

static uint32_t physical(const stream *st, uint32_t logical) { /* 0 = the oldest event in the ring */
    uint32_t start = st->head >= st->count ? st->head - st->count : st->head + st->cap - st->count;
    uint32_t i = start + logical;
    return i >= st->cap ? i - st->cap : i;
}

int kit_window(kit *k, int sid, int64_t t_ms, int32_t *ids, int32_t *length, int64_t *ages) {
    const stream *st;
    uint32_t skip = 0, avail, n, i;
    if (k == NULL || ids == NULL || length == NULL || ages == NULL) return KIT_E_ARG;
    if (sid < 0 || sid >= KIT_N_STREAMS || !k->s[sid].present)
        return fail(k->err, KIT_ERR_LEN, KIT_E_STREAM, "the spec has no stream %d", sid);
    if (t_ms < 0 || t_ms > MAX_TS_MS)
        return fail(k->err, KIT_ERR_LEN, KIT_E_ARG, "decision time %lld outside 0..%lld", (long long)t_ms, MAX_TS_MS);
    st = &k->s[sid];
    while (skip < st->count && st->ring_ts[physical(st, st->count - 1u - skip)] >= t_ms) skip++;
    avail = st->count - skip;
    n = avail < st->max_len ? avail : st->max_len;
    if (n < st->max_len && st->pushed > st->count)
        return fail(k->err, KIT_ERR_LEN, KIT_E_EVICTED, "%s: the window at %lld needs events the ring dropped (%u events at or after t; raise slack)",
                    STREAM_NAMES[sid], (long long)t_ms, skip);
    memset(ids, 0, sizeof(int32_t) * (size_t)st->max_len * st->nf);
    memset(ages, 0, sizeof(int64_t) * (size_t)st->max_len);
    for (i = 0; i < n; i++) {
        uint32_t p = physical(st, avail - n + i);
        memcpy(ids + (size_t)i * st->nf, st->ring_ids + (size_t)p * st->nf, sizeof(int32_t) * st->nf);
        ages[i] = t_ms - st->ring_ts[p];
    }
    *length = (int32_t)n;
    return KIT_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* the decision rule: edgeintent/decide/rule.py `decide`                                           */

static double gain(int objective, const double *p, uint32_t j, double cost, double order_value) {
    if (objective == KIT_PURCHASES) return j ? p[j] : 0.0;
    if (objective == KIT_INCREMENTAL) return p[j] - p[0];
    return order_value * (p[j] - p[0]) - cost * p[j];
}

int kit_decide(const kit_rule *rule, const double *p, double stay) {
    uint32_t j, best = 0;
    double best_v;
    if (rule == NULL || p == NULL || rule->amounts == NULL || rule->n_amounts < 1 || rule->n_amounts > 1000000u ||
        rule->objective < KIT_PURCHASES || rule->objective > KIT_VALUE || !(rule->gamma >= 0.0 && rule->gamma <= 1.0))
        return -KIT_E_ARG;
    if (rule->gamma < 1.0 && !(stay < rule->gamma)) return 0;
    best_v = gain(rule->objective, p, 0, rule->amounts[0], rule->order_value);
    for (j = 1; j < rule->n_amounts; j++) {
        double v = gain(rule->objective, p, j, rule->amounts[j], rule->order_value) - rule->lambda * rule->amounts[j];
        if (v > best_v) { /* strictly: a tie keeps the cheaper amount */
            best = j;
            best_v = v;
        }
    }
    return (int)best;
}
