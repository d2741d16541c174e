/* Runs test code inside a node on the engine's GPU lane, so that it sees exactly the lane
 * (and through sd_dev_for_lane, the model placement) the sd nodes get: a GpuTestJob node
 * (flagged KILN_NODE_GPU) calls job.fn(lane, job.ud). For the GPU tests that load models
 * the way CheckpointLoaderSimple does. KILN_GPU_TESTS_ON_HOST=1 lets the job run on a CPU
 * lane when there is no GPU, a check of a test itself. One job at a time per process. */
#ifndef KILN_TESTS_GPU_LANE_JOB_H
#define KILN_TESTS_GPU_LANE_JOB_H

#include <kiln/kiln.h>
#include <kiln/node.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#define GPU_LANE_JOB_DEVICE 1 /* the GPU the job must run on */

static int on_host(void)
{
    const char *v = getenv("KILN_GPU_TESTS_ON_HOST");
    return v && strcmp(v, "1") == 0;
}

/* The device the GPU lane must have: the first GPU, or the host in the on-host mode. */
static int want_device(void)
{
    if (on_host())
        return KILN_DEVICE_CPU;
    if (kiln_device_count() < 1)
        kiln_test_fail(__FILE__, __LINE__, "no CUDA device (this test needs a GPU)");
    return GPU_LANE_JOB_DEVICE;
}

typedef int (*job_fn)(kiln_lane_t *lane, void *ud);

static struct job {
    job_fn fn;
    void *ud;
    int rc, device, ran;
    char error[2048]; /* the EXECUTION_ERROR event, if any */
} job;

static int job_execute(kiln_call_t *call)
{
    kiln_lane_t *lane = kiln_call_lane(call);
    job.device = kiln_lane_device(lane);
    job.rc = job.fn(lane, job.ud);
    job.ran = 1;
    return job.rc == 0 ? 0 : kiln_call_fail(call, "the test job failed");
}

static const kiln_input_def_t job_no_inputs[] = {{0}};
static const kiln_output_def_t job_no_outputs[] = {{0}};
/* The node to list in the test's pack. */
static const kiln_node_def_t job_def = {
    KILN_NODE_DEF_INIT, .name = "GpuTestJob", .category = "testing", .inputs = job_no_inputs,
    .outputs = job_no_outputs, .flags = KILN_NODE_OUTPUT | KILN_NODE_GPU,
    .execute = job_execute};

static void job_on_event(void *ud, const kiln_event_t *ev)
{
    (void)ud;
    if (ev->type == KILN_EVENT_EXECUTION_ERROR)
        snprintf(job.error, sizeof job.error, "%s", ev->data_json);
}

/* An engine logger that drops everything. */
static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud, (void)level, (void)msg;
}

/* Validates and executes a prompt; fails the test unless it succeeds. */
static void run_prompt(kiln_engine_t *e, const char *prompt)
{
    kiln_prompt_t *p = NULL;
    char *errors = NULL;
    if (kiln_prompt_new(e, prompt, strlen(prompt), NULL, 0, &p, &errors) != 0)
        kiln_test_fail(__FILE__, __LINE__, "prompt refused: %s", errors ? errors : "?");
    kiln_free(errors);
    job.error[0] = '\0';
    int rc = kiln_engine_execute(e, p, "gpu-test", NULL, job_on_event, NULL);
    kiln_prompt_free(p);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "execute: %s: %s", kiln_err_name(rc), job.error);
}

/* Runs fn(lane, ud) in a GpuTestJob node; fails unless it ran on a lane of want_device()
 * and returned 0. */
static void run_on_gpu_lane(kiln_engine_t *e, job_fn fn, void *ud)
{
    memset(&job, 0, sizeof job);
    job.fn = fn;
    job.ud = ud;
    job.rc = job.device = -1;
    run_prompt(e, "{\"1\": {\"class_type\": \"GpuTestJob\", \"inputs\": {}}}");
    ASSERT(job.ran);
    ASSERT_EQ_INT(job.rc, 0);
    ASSERT_EQ_INT(job.device, want_device());
}

#endif
