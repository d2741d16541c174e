/* Executing one prompt. The scheduler runs on the thread that called kiln_engine_execute:
 * it computes signatures, builds the plan, then loops: dispatch ready nodes to lanes,
 * sleep on the completion queue, fold completions in (cache, consumers, early release),
 * until nothing runs. Lane workers run the nodes (node_job) and post completions.
 *
 * Dispatch: a node the affinity policy pins to a lane is queued there at once (the lane
 * runs its queue in order); a node for "any CPU lane" goes to a CPU lane that has nothing
 * of this prompt queued, or waits for one, so the ready order decides which node runs
 * next. When a node fails or the prompt is interrupted, nothing new is dispatched, the
 * nodes still running on other lanes are waited for (their results are cached), and the
 * prompt ends with execution_error or execution_interrupted. */
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"
#include "sched/sched_int.h"
#include "value/value.h"

typedef struct run {
    kiln__exec_t x;
    kiln_engine_t *e;            /* borrowed */
    kiln__plan_t *plan;          /* owned */
    kiln__sig_t *sigs;           /* owned: one per graph node */
    kiln__ready_t ready;         /* owned */
    int *held;                   /* owned: scratch for nodes waiting for an idle lane */
    int *lane_busy;              /* owned: this prompt's nodes queued or running per lane */
    size_t inflight;
    int *executed;               /* owned: nodes that ran, in completion order */
    size_t n_executed;
    size_t n_finished;           /* nodes of the plan that ran or took a duplicate's result */
    int stop;                    /* 0, KILN_ENODE or KILN_EINTERRUPTED */
    int fail_idx;
    char *fail_msg;              /* owned: exception_message */
    const char *fail_type;       /* static */
    kiln__json_t *fail_inputs;   /* owned */
} run_t;

static const char OOM_TIPS[] =
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked "
    "before you might have accidentally set the batch_size to a large number.";

/* A stable exception_type for an error code (ComfyUI reports Python class names). */
static const char *exception_type(int rc)
{
    switch (rc) {
    case KILN_ENOMEM:
    case KILN_EDEVICE_OOM:
        return "kiln.OutOfMemoryError";
    case KILN_EDEVICE:
        return "kiln.DeviceError";
    case KILN_EIO:
        return "kiln.IOError";
    default:
        return "kiln.NodeError";
    }
}

/* "<message>\n<tips>" as ComfyUI formats exception_message (tips are empty but for OOM). */
static char *exception_text(const char *msg, int rc)
{
    const char *tips = rc == KILN_EDEVICE_OOM ? OOM_TIPS : "";
    size_t a = strlen(msg), b = strlen(tips);
    char *s = malloc(a + b + 2);
    if (s) {
        memcpy(s, msg, a);
        s[a] = '\n';
        memcpy(s + a + 1, tips, b + 1);
    }
    return s;
}

/* ---- the lane side ------------------------------------------------------------------- */

static int add_hidden(kiln__exec_t *x, kiln_call_t *call, const kiln__graph_node_t *n)
{
    const kiln__node_class_t *cls = n->cls;
    int rc = 0;
    for (size_t i = 0; i < cls->n_inputs && rc == 0; i++) {
        const kiln_input_def_t *d = &cls->inputs[i];
        if (d->section != KILN_INPUT_HIDDEN || !d->type)
            continue;
        const char *text = NULL;
        if (strcmp(d->type, "PROMPT") == 0)
            text = x->prompt_compact;
        else if (strcmp(d->type, "EXTRA_PNGINFO") == 0)
            text = x->pnginfo_compact;
        else if (strcmp(d->type, "UNIQUE_ID") == 0)
            text = n->id;
        if (text)
            rc = kiln__call_add_value(call, d->name, kiln_value_new_string(text, strlen(text)),
                                      true);
    }
    return rc;
}

/* Gives the call its inputs: linked ones read the sources' output lists in place,
 * constants become one-element lists, hidden ones are filled by the engine. */
static int add_inputs(kiln__exec_t *x, kiln_call_t *call, const kiln__graph_node_t *n)
{
    for (size_t i = 0; i < n->n_inputs; i++) {
        const kiln__graph_input_t *gi = &n->inputs[i];
        int rc = 0;
        if (gi->is_link && gi->src >= 0) {
            const kiln__outputs_t *res = x->plan->nodes[gi->src].result;
            if (!res || gi->src_slot < 0 || (size_t)gi->src_slot >= res->n_slots)
                return kiln_call_failf(call, "input '%s': node %s has no output %d", gi->name,
                                       gi->src_id, gi->src_slot);
            rc = kiln__call_add_list(call, gi->name, &res->slots[gi->src_slot]);
        } else if (!gi->is_link && gi->def && gi->value) {
            rc = kiln__call_add_value(call, gi->name, kiln__value_from_json(gi->value, gi->def),
                                      false);
        }
        if (rc != 0)
            return rc;
    }
    return add_hidden(x, call, n);
}

static void post(kiln__exec_t *x, kiln__completion_t *c)
{
    pthread_mutex_lock(&x->mu);
    c->next = NULL;
    if (x->done_tail)
        x->done_tail->next = c;
    else
        x->done_head = c;
    x->done_tail = c;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Runs one node on a lane worker and reports to the scheduler. */
static void node_job(kiln__lane_job_t *job, kiln_lane_t *lane)
{
    kiln__pnode_t *pn = (kiln__pnode_t *)job;
    kiln__exec_t *x = pn->exec;
    const kiln__graph_node_t *n = &x->g->nodes[pn->idx];
    kiln__completion_t *c = &pn->done;
    kiln__ev_executing(x, n);
    kiln_call_t *call = kiln__call_new_exec(n, x, lane);
    int rc = call ? add_inputs(x, call, n) : KILN_ENOMEM;
    uint64_t calls = 0;
    if (rc == 0)
        rc = kiln__call_execute(call, &calls);
    atomic_fetch_add(x->n_executed, calls);
    if (rc == 0 && lane->ops && lane->ops->synchronize)
        rc = lane->ops->synchronize(lane->ops_ctx, lane);
    c->rc = rc;
    if (rc == 0) {
        c->result = kiln__call_take_outputs(call);
        if (c->result->ui)
            kiln__ev_executed(x, n, c->result->ui);
    } else if (rc != KILN_EINTERRUPTED) {
        const char *why = kiln__call_error(call);
        c->message = exception_text(why ? why : kiln_strerror(rc), rc);
        c->inputs = call ? kiln__call_inputs_json(call) : NULL;
    }
    kiln__call_free(call);
    post(x, c);
}

/* ---- the scheduler side -------------------------------------------------------------- */

static size_t lane_index(const run_t *r, const kiln_lane_t *lane)
{
    for (size_t i = 0; i < r->e->lanes->n; i++)
        if (r->e->lanes->lanes[i] == lane)
            return i;
    return 0;
}

/* The CPU lane with the fewest of this prompt's nodes; NULL when every one is busy. */
static kiln_lane_t *idle_cpu_lane(const run_t *r)
{
    const kiln__lanes_t *ls = r->e->lanes;
    for (size_t i = 0; i < ls->n_cpu; i++)
        if (r->lane_busy[i] == 0)
            return ls->lanes[i];
    return NULL;
}

static void set_stop(run_t *r, int why, int idx, char *msg, const char *type,
                     kiln__json_t *inputs)
{
    if (r->stop) {
        free(msg);
        kiln__json_free(inputs);
        return;
    }
    r->stop = why;
    r->fail_idx = idx;
    r->fail_msg = msg;
    r->fail_type = type;
    r->fail_inputs = inputs;
}

static void submit(run_t *r, int u, kiln_lane_t *lane)
{
    kiln__pnode_t *pn = &r->plan->nodes[u];
    pn->state = KILN__PN_RUNNING;
    pn->lane = lane;
    pn->exec = &r->x;
    pn->job.run = node_job;
    pn->done.idx = u;
    r->inflight++;
    r->lane_busy[lane_index(r, lane)]++;
    kiln__lane_submit(lane, &pn->job);
}

/* One consumer of s has finished: the last one lets s's result go (and, without a
 * cache, its entry). */
static void consumer_done(run_t *r, int s)
{
    kiln__pnode_t *sp = &r->plan->nodes[s];
    if (--sp->consumers_left > 0)
        return;
    kiln__outputs_release(sp->result);
    sp->result = NULL;
    if (kiln__cache_mode(r->e->cache) == KILN_CACHE_NONE)
        kiln__cache_drop(r->e->cache, &r->sigs[s]);
}

/* Node u has its result: release what it read, wake its consumers. */
static void node_done(run_t *r, int u)
{
    kiln__pnode_t *pn = &r->plan->nodes[u];
    const kiln__graph_node_t *gn = &r->x.g->nodes[u];
    pn->state = KILN__PN_DONE;
    r->n_finished++;
    for (size_t k = 0; k < gn->n_inputs; k++) {
        int s = gn->inputs[k].is_link ? gn->inputs[k].src : -1;
        bool repeat = false;
        for (size_t j = 0; j < k && s >= 0 && !repeat; j++)
            repeat = gn->inputs[j].is_link && gn->inputs[j].src == s;
        if (s >= 0 && !repeat)
            consumer_done(r, s);
    }
    if (pn->alias_of >= 0)
        consumer_done(r, pn->alias_of);
    for (int i = 0; i < pn->n_consumers; i++) {
        kiln__pnode_t *cp = &r->plan->nodes[pn->consumers[i]];
        if (--cp->deps_left == 0 && cp->state == KILN__PN_WAITING) {
            cp->state = KILN__PN_READY;
            if (kiln__ready_push(&r->ready, r->plan, pn->consumers[i]) != 0)
                set_stop(r, KILN_ENODE, pn->consumers[i], exception_text("out of memory", 0),
                         "kiln.OutOfMemoryError", NULL);
        }
    }
}

/* A duplicate of an earlier node takes that node's result without running. ComfyUI
 * reports such a cache hit with `executed` when it is an output node or has a UI. */
static void complete_alias(run_t *r, int u)
{
    kiln__pnode_t *pn = &r->plan->nodes[u];
    kiln__outputs_t *res = r->plan->nodes[pn->alias_of].result;
    kiln__outputs_retain(res);
    pn->result = res;
    atomic_fetch_add(&r->e->n_cached, 1);
    if (pn->is_output || res->ui)
        kiln__ev_executed(&r->x, &r->x.g->nodes[u], res->ui);
    node_done(r, u);
}

/* Hands ready nodes to lanes until none can go. */
static void dispatch(run_t *r)
{
    bool progressed = true;
    while (progressed && !r->stop) {
        progressed = false;
        size_t n_held = 0;
        int u;
        while (!r->stop && (u = kiln__ready_pop(&r->ready, r->plan)) >= 0) {
            if (atomic_load(&r->e->interrupt)) {
                set_stop(r, KILN_EINTERRUPTED, u, NULL, NULL, NULL);
                break;
            }
            if (r->plan->nodes[u].alias_of >= 0) {
                complete_alias(r, u);
                progressed = true;
                continue;
            }
            kiln_lane_t *lane = NULL;
            char err[256];
            if (kiln__affinity_pick(r->e->affinity, &r->x.g->nodes[u], r->e->lanes, &lane, err,
                                    sizeof err) != 0) {
                set_stop(r, KILN_ENODE, u, exception_text(err, 0), "kiln.AffinityError", NULL);
                break;
            }
            if (!lane && !(lane = idle_cpu_lane(r))) {
                r->held[n_held++] = u;
                continue;
            }
            submit(r, u, lane);
            progressed = true;
        }
        for (size_t i = 0; i < n_held; i++)
            kiln__ready_push(&r->ready, r->plan, r->held[i]); /* capacity exists: no OOM */
    }
}

static void handle(run_t *r, kiln__completion_t *c)
{
    int u = c->idx;
    kiln__pnode_t *pn = &r->plan->nodes[u];
    r->inflight--;
    r->lane_busy[lane_index(r, pn->lane)]--;
    if (c->rc != 0) {
        pn->state = KILN__PN_FAILED;
        if (c->rc == KILN_EINTERRUPTED)
            set_stop(r, KILN_EINTERRUPTED, u, NULL, NULL, NULL);
        else
            set_stop(r, KILN_ENODE, u, c->message, exception_type(c->rc), c->inputs);
        c->message = NULL;
        c->inputs = NULL;
        return;
    }
    pn->result = c->result;
    c->result = NULL;
    r->executed[r->n_executed++] = u;
    if (kiln__cache_put(r->e->cache, &r->sigs[u], pn->result) != 0)
        kiln_logf(KILN_LOG_WARN, "node %s: out of memory caching its result", r->x.g->nodes[u].id);
    node_done(r, u);
}

/* Sleeps until at least one node finished, then folds every posted completion in. */
static void wait_completions(run_t *r)
{
    kiln__exec_t *x = &r->x;
    pthread_mutex_lock(&x->mu);
    while (!x->done_head)
        pthread_cond_wait(&x->cv, &x->mu);
    kiln__completion_t *c = x->done_head;
    x->done_head = x->done_tail = NULL;
    pthread_mutex_unlock(&x->mu);
    while (c) {
        kiln__completion_t *next = c->next;
        handle(r, c);
        c = next;
    }
}

/* Emits the closing event and returns the prompt's status. */
static int finish(run_t *r)
{
    const kiln__graph_t *g = r->x.g;
    if (r->stop == KILN_EINTERRUPTED) {
        kiln__ev_failed(&r->x, KILN_EVENT_EXECUTION_INTERRUPTED, &g->nodes[r->fail_idx], r->plan,
                        r->executed, r->n_executed, NULL, NULL, NULL);
        return KILN_EINTERRUPTED;
    }
    if (r->stop) {
        kiln__ev_failed(&r->x, KILN_EVENT_EXECUTION_ERROR, &g->nodes[r->fail_idx], r->plan,
                        r->executed, r->n_executed, r->fail_msg ? r->fail_msg : "\n",
                        r->fail_type, r->fail_inputs);
        return KILN_ENODE;
    }
    if (r->n_finished < r->plan->n_todo) {
        /* Kahn stalled: the rest wait on each other. Blame the first of them. */
        size_t i = 0;
        while (i < r->plan->n && r->plan->nodes[i].state != KILN__PN_WAITING)
            i++;
        kiln__ev_failed(&r->x, KILN_EVENT_EXECUTION_ERROR, &g->nodes[i < r->plan->n ? i : 0],
                        r->plan, r->executed, r->n_executed, "Dependency cycle detected\n",
                        "graph.DependencyCycleError", NULL);
        return KILN_ENODE;
    }
    kiln__ev_start(&r->x, KILN_EVENT_EXECUTION_SUCCESS);
    return 0;
}

static int run_loop(run_t *r)
{
    const kiln__graph_t *g = r->x.g;
    kiln__plan_t *p = r->plan;
    kiln__ev_start(&r->x, KILN_EVENT_EXECUTION_START);
    kiln__ev_cached(&r->x, p);
    atomic_fetch_add(&r->e->n_cached, p->n_cached);
    /* Cached output nodes report their cached UI right away (ComfyUI §9.9). */
    for (size_t o = 0; o < g->n_outputs; o++) {
        kiln__pnode_t *pn = &p->nodes[g->outputs[o]];
        if (pn->state == KILN__PN_CACHED)
            kiln__ev_executed(&r->x, &g->nodes[g->outputs[o]], pn->result->ui);
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->nodes[i].state == KILN__PN_WAITING && p->nodes[i].deps_left == 0) {
            p->nodes[i].state = KILN__PN_READY;
            if (kiln__ready_push(&r->ready, p, (int)i) != 0)
                set_stop(r, KILN_ENODE, (int)i, exception_text("out of memory", 0),
                         "kiln.OutOfMemoryError", NULL);
        }
    }
    for (;;) {
        dispatch(r);
        if (r->inflight == 0)
            break;
        wait_completions(r);
    }
    return finish(r);
}

/* ---- setup and teardown -------------------------------------------------------------- */

/* Metadata and hidden-input texts from extra_data.extra_pnginfo. */
static int setup_pnginfo(run_t *r, const kiln__json_t *extra)
{
    kiln__exec_t *x = &r->x;
    x->metadata = !r->e->env.disable_metadata;
    const kiln__json_t *info = extra ? kiln__json_get(extra, "extra_pnginfo") : NULL;
    if (!info || info->type != KILN_JSON_OBJECT)
        return 0;
    x->pnginfo_compact = kiln__json_dump(info, KILN_JSON_COMPACT, NULL);
    x->pnginfo_keys = calloc(info->count + 1, sizeof *x->pnginfo_keys);
    x->pnginfo_texts = calloc(info->count + 1, sizeof *x->pnginfo_texts);
    if (!x->pnginfo_compact || !x->pnginfo_keys || !x->pnginfo_texts)
        return KILN_ENOMEM;
    for (const kiln__json_t *m = info->child; m; m = m->next) {
        size_t i = x->n_pnginfo;
        x->pnginfo_keys[i] = strdup(m->key);
        x->pnginfo_texts[i] = kiln__json_dump(m, KILN_JSON_PYTHON, NULL);
        x->n_pnginfo++;
        if (!x->pnginfo_keys[i] || !x->pnginfo_texts[i])
            return KILN_ENOMEM;
    }
    return 0;
}

static int setup(run_t *r, kiln_prompt_t *p, const kiln__json_t *extra)
{
    kiln__exec_t *x = &r->x;
    const kiln__graph_t *g = p->graph;
    x->g = g;
    x->env = &r->e->env;
    x->interrupt = &r->e->interrupt;
    x->n_executed = &r->e->n_executed;
    x->prompt_compact = p->json;
    x->prompt_python = p->python_json;
    pthread_mutex_init(&x->ev_mu, NULL);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    size_t n = g->n_nodes ? g->n_nodes : 1;
    r->sigs = calloc(n, sizeof *r->sigs);
    r->held = calloc(n, sizeof *r->held);
    r->executed = calloc(n, sizeof *r->executed);
    r->lane_busy = calloc(r->e->lanes->n, sizeof *r->lane_busy);
    if (!r->sigs || !r->held || !r->executed || !r->lane_busy)
        return KILN_ENOMEM;
    int rc = setup_pnginfo(r, extra);
    if (rc == 0)
        rc = kiln__sig_compute(g, &r->e->env, r->sigs);
    if (rc != 0)
        return rc;
    kiln__cache_begin_prompt(r->e->cache, r->sigs, g->n_nodes);
    rc = kiln__plan_build(g, r->sigs, r->e->cache, &r->plan);
    x->plan = r->plan;
    return rc;
}

static void teardown(run_t *r)
{
    kiln__exec_t *x = &r->x;
    kiln__plan_free(r->plan);
    kiln__cache_end_prompt(r->e->cache);
    kiln__ready_free(&r->ready);
    free(r->sigs);
    free(r->held);
    free(r->executed);
    free(r->lane_busy);
    free(r->fail_msg);
    kiln__json_free(r->fail_inputs);
    for (size_t i = 0; i < x->n_pnginfo; i++) {
        free(x->pnginfo_keys[i]);
        free(x->pnginfo_texts[i]);
    }
    free(x->pnginfo_keys);
    free(x->pnginfo_texts);
    free(x->pnginfo_compact);
    pthread_mutex_destroy(&x->ev_mu);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
}

/* Parses extra_data (NULL or "" is no extra data). */
static int parse_extra(const char *json, kiln__json_t **out)
{
    *out = NULL;
    if (!json || !*json)
        return 0;
    char err[160];
    int rc = kiln__json_parse(json, strlen(json), out, err, sizeof err);
    if (rc == KILN_EPARSE)
        kiln_logf(KILN_LOG_ERROR, "extra_data: %s", err);
    if (rc == 0 && (*out)->type != KILN_JSON_OBJECT) {
        kiln_logf(KILN_LOG_ERROR, "extra_data: not a JSON object");
        kiln__json_free(*out);
        *out = NULL;
        rc = KILN_EINVAL;
    }
    return rc;
}

int kiln__exec_prompt(kiln_engine_t *e, kiln_prompt_t *p, const char *prompt_id,
                      const char *extra_data_json, kiln_event_cb cb, void *ud)
{
    if (!e || !p || !prompt_id || p->engine != e)
        return KILN_EINVAL;
    kiln__json_t *extra;
    int rc = parse_extra(extra_data_json, &extra);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&e->executing, 1);
    pthread_mutex_lock(&e->exec_mu);
    atomic_store(&e->interrupt, false);
    run_t r = {.e = e, .fail_idx = -1};
    r.x.engine = e;
    r.x.prompt_id = prompt_id;
    r.x.cb = cb;
    r.x.ud = ud;
    rc = setup(&r, p, extra);
    if (rc == 0)
        rc = run_loop(&r);
    teardown(&r);
    pthread_mutex_unlock(&e->exec_mu);
    atomic_fetch_sub(&e->executing, 1);
    kiln__json_free(extra);
    return rc;
}
