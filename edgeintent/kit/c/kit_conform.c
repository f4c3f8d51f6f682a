/* The kit's conformance runner: replays recorded raw events through the kit and writes what it got.
 *
 *   kit_conform SPEC CASES OUT [SLACK]      featurize every case of CASES, write OUT (exit 0; 2 on error)
 *   kit_conform --bench N SPEC CASES CASE   time N featurizations of one case (push all, window all)
 *                                            after N/10 untimed ones;
 *                                            prints {"runs":N,"p50_ns":..,"p90_ns":..,"p99_ns":..,"events":..}
 *
 * CASES (written by edgeintent, exports/kit/cases.bin), little-endian: "EIKC", u32 version 1,
 * u32 n_cases; per case: i64 t_ms, then for gesture, click, cloud: u32 n_events and the events
 * (gesture: i64 ts, str kind, str page, i64 orientation, f64 x0 y0 x1 y1 duration_ms vx vy pressure
 * size; click: i64 ts, str widget, str page; cloud: i64 ts, str action, i64 item_id, i64 category_id,
 * f64 price). A str is u32 byte length (0xFFFFFFFF: missing) and the UTF-8 bytes.
 *
 *   kit_conform --decide RULES OUT         kit_decide on every row of RULES, the choices to OUT (i32 each)
 *
 * RULES: "EIKD", u32 version 1, f64 lambda, f64 gamma, f64 order_value, u32 objective, u32 n_amounts,
 * f64 amounts[n_amounts], u32 n_rows, then per row f64 stay and f64 p[n_amounts].
 *
 * OUT (the format `edgeintent parity --featurizer-dump` reads): "EIKO", u32 version 1, u32 n_cases,
 * u32 n_streams, per stream u8 stream id, u32 max_len, u32 n_features; then per case, per stream:
 * i32 status (0 ok), i32 length, i32 ids[max_len * n_features], i64 ages[max_len].
 */
#define _POSIX_C_SOURCE 199309L
#include "kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STR 65536u

typedef struct {
    const uint8_t *p;
    size_t n, off;
    int bad;
} cur;

static uint64_t rd(cur *c, size_t bytes) {
    uint64_t v = 0;
    size_t i;
    if (c->bad || c->n - c->off < bytes) {
        c->bad = 1;
        return 0;
    }
    for (i = 0; i < bytes; i++) v |= (uint64_t)c->p[c->off + i] << (8 * i);
    c->off += bytes;
    return v;
}

static double rdf(cur *c) {
    uint64_t u = rd(c, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* a string into buf (NUL-terminated); NULL for a missing one */
static const char *rds(cur *c, char *buf) {
    uint32_t len = (uint32_t)rd(c, 4);
    if (c->bad) return NULL;
    if (len == 0xFFFFFFFFu) return NULL;
    if (len > MAX_STR || c->n - c->off < len) {
        c->bad = 1;
        return NULL;
    }
    memcpy(buf, c->p + c->off, len);
    buf[len] = '\0';
    c->off += len;
    return buf;
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

static char s1[MAX_STR + 1], s2[MAX_STR + 1];

/* push one case's events; returns the first push error (0 if none) */
static int push_case(kit *k, cur *c, int64_t *t_ms) {
    int s, status = KIT_OK;
    *t_ms = (int64_t)rd(c, 8);
    for (s = 0; s < KIT_N_STREAMS; s++) {
        uint32_t i, n = (uint32_t)rd(c, 4);
        for (i = 0; i < n && !c->bad; i++) {
            int rc;
            if (s == KIT_GESTURE) {
                kit_gesture e;
                e.ts_ms = (int64_t)rd(c, 8);
                e.kind = rds(c, s1);
                e.page = rds(c, s2);
                e.orientation = (int64_t)rd(c, 8);
                e.x0 = rdf(c); e.y0 = rdf(c); e.x1 = rdf(c); e.y1 = rdf(c);
                e.duration_ms = rdf(c); e.vx = rdf(c); e.vy = rdf(c); e.pressure = rdf(c); e.size = rdf(c);
                rc = kit_push_gesture(k, &e);
            } else if (s == KIT_CLICK) {
                kit_click e;
                e.ts_ms = (int64_t)rd(c, 8);
                e.widget = rds(c, s1);
                e.page = rds(c, s2);
                rc = kit_push_click(k, &e);
            } else {
                kit_cloud e;
                e.ts_ms = (int64_t)rd(c, 8);
                e.action = rds(c, s1);
                e.item_id = (int64_t)rd(c, 8);
                e.category_id = (int64_t)rd(c, 8);
                e.price = rdf(c);
                rc = kit_push_cloud(k, &e);
            }
            if (rc != KIT_OK && status == KIT_OK && !c->bad) status = rc;
        }
    }
    return status;
}

static void put(FILE *fh, uint64_t v, int bytes) {
    uint8_t b[8];
    int i;
    for (i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    fwrite(b, 1, (size_t)bytes, fh);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int decide_file(const char *path, const char *out_path) {
    size_t len = 0;
    uint8_t *data = slurp(path, &len);
    cur c;
    kit_rule rule;
    double *amounts = NULL, *p = NULL;
    uint32_t i, j, n_rows;
    FILE *out;
    if (data == NULL || len < 8 || memcmp(data, "EIKD", 4) != 0) {
        fprintf(stderr, "kit_conform: %s is not a rules file\n", path);
        return 2;
    }
    c.p = data;
    c.n = len;
    c.off = 4;
    c.bad = 0;
    c.bad = rd(&c, 4) != 1;
    rule.lambda = rdf(&c);
    rule.gamma = rdf(&c);
    rule.order_value = rdf(&c);
    rule.objective = (int)rd(&c, 4);
    rule.n_amounts = (uint32_t)rd(&c, 4);
    if (c.bad || rule.n_amounts < 1 || rule.n_amounts > 1000) {
        fprintf(stderr, "kit_conform: %s: malformed rule\n", path);
        return 2;
    }
    amounts = (double *)malloc(sizeof(double) * rule.n_amounts);
    p = (double *)malloc(sizeof(double) * rule.n_amounts);
    for (j = 0; j < rule.n_amounts; j++) amounts[j] = rdf(&c);
    rule.amounts = amounts;
    n_rows = (uint32_t)rd(&c, 4);
    out = fopen(out_path, "wb");
    if (out == NULL) {
        fprintf(stderr, "kit_conform: cannot write %s\n", out_path);
        return 2;
    }
    for (i = 0; i < n_rows && !c.bad; i++) {
        double stay = rdf(&c);
        for (j = 0; j < rule.n_amounts; j++) p[j] = rdf(&c);
        if (!c.bad) put(out, (uint64_t)(uint32_t)kit_decide(&rule, p, stay), 4);
    }
    fclose(out);
    free(amounts);
    free(p);
    free(data);
    if (c.bad) {
        fprintf(stderr, "kit_conform: %s truncated\n", path);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[KIT_ERR_LEN];
    uint8_t *spec, *cases;
    size_t spec_len = 0, cases_len = 0;
    kit *k;
    cur c;
    uint32_t n_cases, i;
    int s, bench = argc == 6 && strcmp(argv[1], "--bench") == 0;
    long runs = bench ? atol(argv[2]) : 0;
    const char *spec_path = bench ? argv[3] : argv[1], *cases_path = bench ? argv[4] : argv[2];
    uint32_t slack = argc == 5 && !bench ? (uint32_t)atol(argv[4]) : 16u;
    int32_t *ids = NULL, length;
    int64_t *ages = NULL;

    if (argc == 4 && strcmp(argv[1], "--decide") == 0) return decide_file(argv[2], argv[3]);
    if (!bench && argc != 4 && argc != 5) {
        fprintf(stderr, "usage: kit_conform SPEC CASES OUT [SLACK] | --bench N SPEC CASES CASE | --decide RULES OUT\n");
        return 2;
    }
    spec = slurp(spec_path, &spec_len);
    cases = slurp(cases_path, &cases_len);
    if (spec == NULL || cases == NULL) {
        fprintf(stderr, "kit_conform: cannot read %s\n", spec == NULL ? spec_path : cases_path);
        return 2;
    }
    k = kit_open(spec, spec_len, slack, err, sizeof err);
    if (k == NULL) {
        fprintf(stderr, "kit_conform: %s: %s\n", spec_path, err);
        return 2;
    }
    {
        uint32_t most = 0;
        for (s = 0; s < KIT_N_STREAMS; s++)
            if (kit_max_len(k, s) * kit_n_features(k, s) > most) most = kit_max_len(k, s) * kit_n_features(k, s);
        ids = (int32_t *)malloc(sizeof(int32_t) * (most + 1u));
        ages = (int64_t *)malloc(sizeof(int64_t) * (most + 1u));
    }
    c.p = cases;
    c.n = cases_len;
    c.off = 0;
    c.bad = 0;
    if (cases_len < 12 || memcmp(cases, "EIKC", 4) != 0) {
        fprintf(stderr, "kit_conform: %s is not a cases file\n", cases_path);
        return 2;
    }
    c.off = 4;
    if (rd(&c, 4) != 1) {
        fprintf(stderr, "kit_conform: %s: unsupported cases version\n", cases_path);
        return 2;
    }
    n_cases = (uint32_t)rd(&c, 4);

    if (bench) {
        uint32_t want = (uint32_t)atol(argv[5]);
        size_t start = 0;
        int64_t t_ms, *times;
        long r;
        for (i = 0; i <= want && i < n_cases; i++) {
            start = c.off;
            kit_reset(k);
            push_case(k, &c, &t_ms);
        }
        if (want >= n_cases || c.bad || runs < 1) {
            fprintf(stderr, "kit_conform: no case %u in %s\n", want, cases_path);
            return 2;
        }
        times = (int64_t *)malloc(sizeof(int64_t) * (size_t)runs);
        for (r = 0; r < runs / 10; r++) { /* warm-up: caches and branch predictors, as the app's steady state */
            c.off = start;
            kit_reset(k);
            push_case(k, &c, &t_ms);
            for (s = 0; s < KIT_N_STREAMS; s++)
                if (kit_has_stream(k, s)) kit_window(k, s, t_ms, ids, &length, ages);
        }
        for (r = 0; r < runs; r++) {
            int64_t t0 = now_ns();
            c.off = start;
            kit_reset(k);
            push_case(k, &c, &t_ms);
            for (s = 0; s < KIT_N_STREAMS; s++)
                if (kit_has_stream(k, s)) kit_window(k, s, t_ms, ids, &length, ages);
            times[r] = now_ns() - t0;
        }
        qsort(times, (size_t)runs, sizeof(int64_t), cmp_i64);
        printf("{\"runs\": %ld, \"p50_ns\": %lld, \"p90_ns\": %lld, \"p99_ns\": %lld, \"min_ns\": %lld}\n", runs,
               (long long)times[runs / 2], (long long)times[(runs * 9) / 10], (long long)times[(runs * 99) / 100],
               (long long)times[0]);
        free(times);
    } else {
        FILE *out = fopen(argv[3], "wb");
        uint32_t n_streams = 0;
        if (out == NULL) {
            fprintf(stderr, "kit_conform: cannot write %s\n", argv[3]);
            return 2;
        }
        for (s = 0; s < KIT_N_STREAMS; s++) n_streams += (uint32_t)kit_has_stream(k, s);
        fwrite("EIKO", 1, 4, out);
        put(out, 1, 4);
        put(out, n_cases, 4);
        put(out, n_streams, 4);
        for (s = 0; s < KIT_N_STREAMS; s++)
            if (kit_has_stream(k, s)) {
                put(out, (uint64_t)s, 1);
                put(out, kit_max_len(k, s), 4);
                put(out, kit_n_features(k, s), 4);
            }
        for (i = 0; i < n_cases; i++) {
            int64_t t_ms;
            int pushed;
            kit_reset(k);
            pushed = push_case(k, &c, &t_ms);
            if (c.bad) {
                fprintf(stderr, "kit_conform: %s truncated in case %u\n", cases_path, i);
                fclose(out);
                return 2;
            }
            for (s = 0; s < KIT_N_STREAMS; s++) {
                uint32_t m, j, nf = kit_n_features(k, s), ml = kit_max_len(k, s);
                int rc;
                if (!kit_has_stream(k, s)) continue;
                rc = kit_window(k, s, t_ms, ids, &length, ages);
                if (pushed != KIT_OK) rc = pushed;
                if (rc != KIT_OK) {
                    length = 0;
                    memset(ids, 0, sizeof(int32_t) * ml * nf);
                    memset(ages, 0, sizeof(int64_t) * ml);
                }
                put(out, (uint64_t)(uint32_t)rc, 4);
                put(out, (uint64_t)(uint32_t)length, 4);
                for (m = 0; m < ml * nf; m++) put(out, (uint64_t)(uint32_t)ids[m], 4);
                for (j = 0; j < ml; j++) put(out, (uint64_t)ages[j], 8);
            }
        }
        if (fclose(out) != 0) {
            fprintf(stderr, "kit_conform: cannot write %s\n", argv[3]);
            return 2;
        }
    }
    free(ids);
    free(ages);
    kit_close(k);
    free(spec);
    free(cases);
    return 0;
}
