/* The UNet body on a GPU as a recorded graph (kiln/graph.h). A sampler calls the UNet
 * with the same shapes at every step; the second call of a shape on a lane records the
 * ~600 op launches of the body once, and every later call replays them with a single
 * launch, so the host no longer paces the step. Inputs are copied into the graph's own
 * tensors before a replay and the result out of its output after it (a few hundred KB).
 * The time embedding stays eager: it reads host timesteps. KILN_SD_GRAPHS=0 runs every
 * call eagerly; a recording that fails leaves its shape eager for good (the log names the
 * op that broke it). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sd_device.h"
#include "unet_int.h"

#define MAX_GRAPHS 8 /* recorded shapes per model (a few resolutions and batch sizes) */

typedef struct unet_graph {
    kiln_lane_t *lane;          /* the lane (stream) that recorded it; NULL: thread stream */
    int64_t xs[4], cs[3], es[2]; /* shapes of x, context, emb */
    kiln_dtype_t dt;
    int calls;                   /* eager calls so far */
    int eager;                   /* recording failed: always eager */
    kiln_graph_t *g;
    kiln_tensor_t *x, *emb, *ctx, *out; /* the graph's inputs and output */
} unet_graph_t;

struct sd_unet_graphs {
    unet_graph_t e[MAX_GRAPHS];
    int n;
};

static pthread_mutex_t graphs_mu = PTHREAD_MUTEX_INITIALIZER;

static int graphs_on(void)
{
    const char *v = getenv("KILN_SD_GRAPHS");
    return !(v && *v == '0') && KILN_API_HAS(KILN_HOST_SYMBOL, lane_record_begin);
}

static void shape_of(const kiln_tensor_t *t, int64_t *s, int n)
{
    for (int i = 0; i < n; i++)
        s[i] = kiln_tensor_dim(t, i);
}

/* The entry for this call's lane and shapes (made on first sight), or NULL when the table
 * is full. */
static unet_graph_t *entry_for(sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                               const kiln_tensor_t *emb, const kiln_tensor_t *ctx)
{
    unet_graph_t key = {.lane = lane, .dt = kiln_tensor_dtype(x)};
    shape_of(x, key.xs, 4);
    shape_of(ctx, key.cs, 3);
    shape_of(emb, key.es, 2);
    unet_graph_t *found = NULL;
    pthread_mutex_lock(&graphs_mu);
    if (!u->graphs)
        u->graphs = calloc(1, sizeof *u->graphs);
    for (int i = 0; u->graphs && i < u->graphs->n && !found; i++) {
        unet_graph_t *e = &u->graphs->e[i];
        if (e->lane == lane && e->dt == key.dt && !memcmp(e->xs, key.xs, sizeof key.xs) &&
            !memcmp(e->cs, key.cs, sizeof key.cs) && !memcmp(e->es, key.es, sizeof key.es))
            found = e;
    }
    if (!found && u->graphs && u->graphs->n < MAX_GRAPHS) {
        found = &u->graphs->e[u->graphs->n++];
        *found = key;
    }
    pthread_mutex_unlock(&graphs_mu);
    return found;
}

/* A tensor like t (shape; the target's dtype and layout), or NULL. */
static kiln_tensor_t *like(const kiln_tensor_t *t)
{
    int64_t s[4];
    int nd = kiln_tensor_ndim(t);
    shape_of(t, s, nd);
    return sd_tensor_new(KILN_DTYPE_F32, nd, s);
}

/* Records e's graph: its inputs and output made, filled from this call, the body
 * recorded. 0, or an error with e left eager-only. */
static int record(const sd_unet_t *u, unet_graph_t *e, kiln_lane_t *lane,
                  const kiln_tensor_t *x, const kiln_tensor_t *emb, const kiln_tensor_t *ctx,
                  const kiln_tensor_t *out)
{
    e->x = like(x);
    e->emb = like(emb);
    e->ctx = like(ctx);
    e->out = like(out);
    int rc = e->x && e->emb && e->ctx && e->out ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = kiln_lane_record_begin(lane);
    if (rc == 0) {
        int brc = sd_unet_body(u, lane, e->x, e->emb, e->ctx, e->out);
        rc = kiln_lane_record_end(lane, &e->g);
        rc = brc ? brc : rc;
    }
    if (rc != 0) {
        kiln_graph_free(e->g);
        kiln_tensor_t *ts[] = {e->x, e->emb, e->ctx, e->out};
        for (int i = 0; i < 4; i++)
            kiln_tensor_release(ts[i]);
        e->g = NULL;
        e->x = e->emb = e->ctx = e->out = NULL;
        e->eager = 1;
    }
    return rc;
}

int sd_unet_body_graphed(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                         const kiln_tensor_t *emb, const kiln_tensor_t *ctx, kiln_tensor_t *out)
{
    unet_graph_t *e = u->dev.device != KILN_DEVICE_CPU && graphs_on()
                          ? entry_for((sd_unet_t *)u, lane, x, emb, ctx)
                          : NULL;
    if (!e || e->eager || (!e->g && e->calls++ < 1)) /* the first call picks the kernels */
        return sd_unet_body(u, lane, x, emb, ctx, out);
    if (!e->g && record(u, e, lane, x, emb, ctx, out) != 0)
        return sd_unet_body(u, lane, x, emb, ctx, out);
    int rc = kiln_op_contiguous(lane, e->x, x);
    if (rc == 0)
        rc = kiln_op_contiguous(lane, e->emb, emb);
    if (rc == 0)
        rc = kiln_op_contiguous(lane, e->ctx, ctx);
    if (rc == 0)
        rc = kiln_graph_replay(lane, e->g);
    if (rc == 0)
        rc = kiln_op_contiguous(lane, out, e->out);
    return rc;
}

void sd_unet_graphs_free(sd_unet_t *u)
{
    if (!u->graphs)
        return;
    for (int i = 0; i < u->graphs->n; i++) {
        unet_graph_t *e = &u->graphs->e[i];
        kiln_graph_free(e->g); /* first: it waits for queued replays */
        kiln_tensor_t *ts[] = {e->x, e->emb, e->ctx, e->out};
        for (int j = 0; j < 4; j++)
            kiln_tensor_release(ts[j]);
    }
    free(u->graphs);
    u->graphs = NULL;
}
