/* `kiln run` and `kiln validate`: load, check, and (for run) execute a workflow. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"

/* Exit codes: 0 success, 1 the workflow failed validation or could not be read, 2 usage,
 * 3 a node failed during execution, 130 interrupted (as a shell reports SIGINT). */
enum { EXIT_INVALID = 1, EXIT_USAGE = 2, EXIT_NODE_FAILED = 3, EXIT_INTERRUPTED = 130 };

/* SIGINT/SIGTERM are blocked in every thread and taken by this one, which interrupts the
 * engine: the prompt stops at its next node or progress boundary. */
static kiln_engine_t *volatile running_engine;

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    while (sigwait(set, &sig) == 0) {
        fprintf(stderr, "\nkiln: interrupting (signal %d)\n", sig);
        kiln_engine_t *e = running_engine;
        if (e)
            kiln_engine_interrupt(e);
    }
    return NULL;
}

static void watch_signals(void)
{
    static sigset_t set;
    pthread_t th;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pthread_create(&th, NULL, signal_thread, &set) == 0)
        pthread_detach(th);
}

static void uuid4(char out[37])
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, sizeof b, f) != sizeof b) {
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)rand();
    }
    if (f)
        fclose(f);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/* Loads and validates; on success *p is the prompt. Returns an exit code. */
static int load_and_validate(kiln_engine_t *e, const kiln_cli_opts_t *o, kiln_cli_workflow_t *w,
                             kiln_prompt_t **p)
{
    if (kiln_cli_workflow_load(e, o->args[0], o, w) != 0)
        return EXIT_INVALID;
    char *text = kiln__json_dump(w->prompt, KILN_JSON_COMPACT, NULL);
    char *errors = NULL;
    int rc = text ? kiln_prompt_new(e, text, strlen(text), o->targets, (size_t)o->n_targets, p,
                                    &errors)
                  : KILN_ENOMEM;
    free(text);
    if (rc != 0) {
        if (o->json)
            printf("%s\n", errors ? errors : "{}");
        else {
            fprintf(stderr, "kiln: %s failed validation:\n", o->args[0]);
            kiln_cli_print_errors(errors);
        }
        kiln_free(errors);
        return EXIT_INVALID;
    }
    if (errors && strcmp(errors, "{}") != 0 && !o->json) {
        fprintf(stderr, "kiln: some outputs failed validation and will not run:\n");
        kiln_cli_print_errors(errors);
    }
    kiln_free(errors);
    return 0;
}

static int open_engine(int argc, char **argv, const char *cmd, kiln_cli_opts_t *o,
                       kiln_engine_t **e)
{
    if (kiln_cli_parse(argc, argv, o) != 0)
        return EXIT_USAGE;
    if (o->n_args != 1) {
        fprintf(stderr, "usage: kiln %s WORKFLOW.json|IMAGE.png [options]\n", cmd);
        return EXIT_USAGE;
    }
    int rc = kiln_engine_new(&o->engine, e);
    if (rc != 0) {
        fprintf(stderr, "kiln: cannot start the engine: %s\n", kiln_strerror(rc));
        return EXIT_USAGE;
    }
    return 0;
}

int kiln_cli_cmd_run(int argc, char **argv)
{
    kiln_cli_opts_t o;
    kiln_engine_t *e = NULL;
    watch_signals();
    int code = open_engine(argc, argv, "run", &o, &e);
    if (code) {
        kiln_cli_opts_free(&o);
        return code;
    }
    kiln_cli_workflow_t w;
    kiln_prompt_t *p = NULL;
    code = load_and_validate(e, &o, &w, &p);
    if (!code) {
        char id[37];
        uuid4(id);
        char *extra = kiln__json_dump(w.extra_data, KILN_JSON_COMPACT, NULL);
        kiln_cli_progress_t prog;
        kiln_cli_progress_init(&prog, stdout, o.json);
        running_engine = e;
        int rc = kiln_engine_execute(e, p, id, extra, kiln_cli_progress_event, &prog);
        running_engine = NULL;
        kiln_cli_progress_close(&prog);
        free(extra);
        code = rc == 0 ? 0 : rc == KILN_EINTERRUPTED ? EXIT_INTERRUPTED : EXIT_NODE_FAILED;
        kiln_prompt_free(p);
    }
    kiln_cli_workflow_free(&w);
    kiln_engine_close(e);
    kiln_cli_opts_free(&o);
    return code;
}

int kiln_cli_cmd_validate(int argc, char **argv)
{
    kiln_cli_opts_t o;
    kiln_engine_t *e = NULL;
    int code = open_engine(argc, argv, "validate", &o, &e);
    if (code) {
        kiln_cli_opts_free(&o);
        return code;
    }
    kiln_cli_workflow_t w;
    kiln_prompt_t *p = NULL;
    code = load_and_validate(e, &o, &w, &p);
    if (!code) {
        if (o.json) {
            printf("%s\n", kiln_prompt_json(p));
        } else {
            printf("%s: valid; outputs:", o.args[0]);
            for (size_t i = 0; i < kiln_prompt_output_count(p); i++)
                printf(" %s", kiln_prompt_output_id(p, i));
            printf("\n");
        }
        kiln_prompt_free(p);
    }
    kiln_cli_workflow_free(&w);
    kiln_engine_close(e);
    kiln_cli_opts_free(&o);
    return code;
}
