/* edgeintent kit: the phone-side featurizer and decision rule, in C99 with no dependencies.
 *
 * It reproduces edgeintent's build_samples for one decision point: raw events are pushed one at a
 * time (each encoded into its integer ids at push, kept in a ring buffer per stream), and
 * kit_window(t) fills the model's inputs for a decision at t: per stream the ids (max_len x
 * n_features int32, right-padded with 0), the length and the age of each event (t - ts, int64 ms).
 * Events at or after t are left out. The FeatureSpec is data: a binary spec written by
 * `edgeintent export --target kit` (spec.bin), loaded at run time by kit_open.
 *
 * Memory: kit_open allocates once (one block: the spec's tables and the ring buffers); push and
 * window never allocate. A malformed or truncated spec is an error code and a message, never a
 * crash. One kit holds one user's state; it is not thread-safe (use one per thread).
 */
#ifndef EDGEINTENT_KIT_H
#define EDGEINTENT_KIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KIT_FORMAT_VERSION 1u /* of spec.bin */
#define KIT_SPEC_VERSION 1u   /* of the FeatureSpec it carries */
#define KIT_ERR_LEN 160

enum kit_status {
    KIT_OK = 0,
    KIT_E_SPEC = 1,      /* spec.bin malformed, truncated, of another version, or failing its checksum */
    KIT_E_MEMORY = 2,    /* the one allocation at kit_open failed */
    KIT_E_STREAM = 3,    /* the spec has no such stream */
    KIT_E_VALUE = 4,     /* an event value outside the data contract (NaN, inf, x outside 0..1, ts < 0 ...) */
    KIT_E_ORDER = 5,     /* an event earlier than the stream's previous one (push in time order) */
    KIT_E_EVICTED = 6,   /* the window needs events the ring buffer already dropped (raise slack) */
    KIT_E_ARG = 7        /* a NULL pointer or an impossible argument */
};

enum kit_stream { KIT_GESTURE = 0, KIT_CLICK = 1, KIT_CLOUD = 2, KIT_N_STREAMS = 3 };

/* Raw events. Strings are NUL-terminated UTF-8; NULL means missing (encoded as unknown, id 1). */
typedef struct {
    int64_t ts_ms;
    const char *kind; /* swipe / scroll / tap / pinch */
    const char *page;
    int64_t orientation;
    double x0, y0, x1, y1; /* screen-normalised, 0..1 */
    double duration_ms, vx, vy, pressure, size;
} kit_gesture;

typedef struct {
    int64_t ts_ms;
    const char *widget;
    const char *page;
} kit_click;

typedef struct {
    int64_t ts_ms;
    const char *action; /* view / fav / cart / buy */
    int64_t item_id, category_id;
    double price;
} kit_cloud;

typedef struct kit kit;

/* Load a spec (spec.bin bytes; the kit keeps its own copy). `slack` is how many events at or after a
 * decision time the ring keeps beyond max_len (events pushed before the decision is taken). Returns
 * NULL on error, with the message in err (if err_len > 0). */
kit *kit_open(const void *spec, size_t spec_len, uint32_t slack, char *err, size_t err_len);
void kit_close(kit *k);
/* Forget every pushed event (a new user or session); the spec stays loaded. */
void kit_reset(kit *k);

/* The spec's shape: whether a stream is present, its max_len and number of features (0 if absent). */
int kit_has_stream(const kit *k, int stream);
uint32_t kit_max_len(const kit *k, int stream);
uint32_t kit_n_features(const kit *k, int stream);
/* Number of distinct ids of feature j of a stream (the embedding table size), 0 if out of range. */
uint32_t kit_cardinality(const kit *k, int stream, uint32_t j);

/* Push one event: O(n_features), no allocation. Returns a kit_status; the message of the last error
 * is kit_error(k). */
int kit_push_gesture(kit *k, const kit_gesture *e);
int kit_push_click(kit *k, const kit_click *e);
int kit_push_cloud(kit *k, const kit_cloud *e);

/* The window of one stream for a decision at t_ms: ids (max_len * n_features int32, row-major),
 * *length, ages (max_len int64); padding is 0. Events with ts_ms >= t_ms are left out. */
int kit_window(kit *k, int stream, int64_t t_ms, int32_t *ids, int32_t *length, int64_t *ages);

const char *kit_error(const kit *k);
const char *kit_status_name(int status);

/* IIDN's on-device decision rule (decision.json): the index into amounts of the coupon to offer.
 * objective: 0 purchases, 1 incremental, 2 value. j* = 0 if gamma < 1 and !(stay < gamma);
 * otherwise argmax_j gain_j(p) - lambda * amounts[j], ties to the cheaper (lower) index. */
enum kit_objective { KIT_PURCHASES = 0, KIT_INCREMENTAL = 1, KIT_VALUE = 2 };
typedef struct {
    double lambda, gamma, order_value;
    int objective;
    uint32_t n_amounts;
    const double *amounts;
} kit_rule;
/* Returns the index (>= 0), or -KIT_E_ARG for a malformed rule or probabilities. */
int kit_decide(const kit_rule *rule, const double *p, double stay);

/* CRC-32 (IEEE, as zlib's crc32) of spec.bin's body; exposed for tools that write specs. */
uint32_t kit_crc32(const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
