/* Lanes and the affinity policy on their own: lane queues run in submission order on
 * their own threads, rules files parse with line-numbered errors, and a node's lane is
 * chosen by _meta.lane, then node rules, then class rules, then the default. */
#include <stdatomic.h>
#include <unistd.h>

#include "runner.h"
#include "sched/affinity.h"
#include "sched/lane.h"

/* ---- lanes --------------------------------------------------------------------------- */

typedef struct rec_job {
    kiln__lane_job_t job;
    int tag;
    pthread_t thread;
} rec_job_t;

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static int rec_order[64];
static int rec_n;

static void rec_run(kiln__lane_job_t *job, kiln_lane_t *lane)
{
    rec_job_t *r = (rec_job_t *)job;
    usleep(1000);
    r->thread = pthread_self();
    pthread_mutex_lock(&rec_mu);
    rec_order[rec_n++] = r->tag;
    pthread_mutex_unlock(&rec_mu);
}

static void test_lane_fifo_and_threads(void)
{
    kiln__lanes_t *ls = NULL;
    ASSERT_EQ_INT(kiln__lanes_new(2, &ls), 0);
    ASSERT_EQ_INT(ls->n, 2);
    ASSERT_EQ_INT(ls->n_cpu, 2);
    ASSERT_STR_EQ(ls->lanes[1]->name, "cpu:1");
    ASSERT(kiln__lanes_find(ls, "cpu:0") == ls->lanes[0]);
    ASSERT(kiln__lanes_find(ls, "cpu:2") == NULL);
    rec_job_t jobs[10];
    for (int i = 0; i < 10; i++) {
        jobs[i].job.run = rec_run;
        jobs[i].tag = i;
        kiln__lane_submit(ls->lanes[0], &jobs[i].job);
    }
    ASSERT_CMP_INT(kiln__lane_load(ls->lanes[0]), >=, 1);
    ASSERT(kiln__lanes_least_loaded_cpu(ls) == ls->lanes[1]);
    kiln__lanes_free(ls); /* drains the queues before joining */
    ASSERT_EQ_INT(rec_n, 10);
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ_INT(rec_order[i], i);
        ASSERT(pthread_equal(jobs[i].thread, jobs[0].thread));
        ASSERT(!pthread_equal(jobs[i].thread, pthread_self()));
    }
}

static void test_lane_add_device_lane(void)
{
    kiln__lanes_t *ls = NULL;
    ASSERT_EQ_INT(kiln__lanes_new(1, &ls), 0);
    kiln_lane_t *gpu = NULL;
    ASSERT_EQ_INT(kiln__lanes_add(ls, 0, 0, "cuda:0:0", NULL, NULL, NULL, &gpu), 0);
    ASSERT_EQ_INT(kiln__lanes_add(ls, 0, 1, "cuda:0:0", NULL, NULL, NULL, NULL), KILN_EEXISTS);
    ASSERT_EQ_INT(kiln__lanes_add(ls, 0, 1, "", NULL, NULL, NULL, NULL), KILN_EINVAL);
    ASSERT_EQ_INT(ls->n, 2);
    ASSERT_EQ_INT(ls->n_cpu, 1);
    ASSERT(kiln__lanes_find(ls, "cuda:0:0") == gpu);
    /* Device lanes are not part of the CPU pool. */
    ASSERT(kiln__lanes_least_loaded_cpu(ls) == ls->lanes[0]);
    kiln__lanes_free(ls);
    ASSERT_EQ_INT(kiln__lanes_new(0, &ls), KILN_EINVAL);
}

/* ---- rules --------------------------------------------------------------------------- */

static kiln__lanes_t *lanes3(void)
{
    kiln__lanes_t *ls = NULL;
    ASSERT_EQ_INT(kiln__lanes_new(3, &ls), 0);
    return ls;
}

static void expect_parse_error(const char *text, const char *message)
{
    kiln__lanes_t *ls = lanes3();
    kiln__affinity_t *a = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(kiln__affinity_parse(text, "r.conf", ls, &a, err, sizeof err), KILN_EPARSE);
    ASSERT(a == NULL);
    ASSERT_STR_EQ(err, message);
    kiln__lanes_free(ls);
}

static void test_rules_errors_have_line_numbers(void)
{
    expect_parse_error("# ok\nclass A lane cpu:0\nclass B lane cpu:7\n",
                       "r.conf:3: unknown lane 'cpu:7' (lanes: cpu, cpu:0, cpu:1, cpu:2)");
    expect_parse_error("\n\nclas A lane cpu:0\n",
                       "r.conf:3: expected 'class <class_type> lane <lane>', 'node <id> lane "
                       "<lane>' or 'default lane <lane>'");
    expect_parse_error("class A lane\n",
                       "r.conf:1: expected 'class <class_type> lane <lane>', 'node <id> lane "
                       "<lane>' or 'default lane <lane>'");
    expect_parse_error("class A lane cpu:0\n# again\nclass A lane cpu:1\n",
                       "r.conf:3: duplicate rule for class 'A' (first on line 1)");
    expect_parse_error("node 7 lane cpu:0\nnode 7 lane cpu:0\n",
                       "r.conf:2: duplicate rule for node '7' (first on line 1)");
    expect_parse_error("default lane cpu\ndefault lane cpu:1\n",
                       "r.conf:2: duplicate default rule (first on line 1)");
    expect_parse_error("class \"Open Quote lane cpu:0\n", "r.conf:1: unterminated quote");
}

static kiln__json_t *parse(const char *text)
{
    kiln__json_t *j = NULL;
    char err[128];
    ASSERT_EQ_INT(kiln__json_parse(text, strlen(text), &j, err, sizeof err), 0);
    return j;
}

/* The lane chosen for a node of class cls with id and prompt entry json ("" for none). */
static const char *pick(const kiln__affinity_t *a, const kiln__lanes_t *ls, const char *id,
                        const char *cls, const char *json)
{
    kiln__json_t *j = *json ? parse(json) : NULL;
    kiln__graph_node_t n = {.id = id, .class_type = cls, .json = j};
    kiln_lane_t *lane = NULL;
    char err[256];
    int rc = kiln__affinity_pick(a, &n, ls, &lane, err, sizeof err);
    kiln__json_free(j);
    if (rc != 0)
        return "error";
    return lane ? lane->name : "pool";
}

static void test_rules_precedence(void)
{
    kiln__lanes_t *ls = lanes3();
    kiln__affinity_t *a = NULL;
    char err[256] = "";
    const char *text = "class KSampler lane cpu:1  # the sampler\n"
                       "class \"VAE Decode\" lane cpu:2\n"
                       "node 7 lane cpu:0\n"
                       "node 8 lane any\n"
                       "default lane cpu:2\n";
    ASSERT_EQ_INT(kiln__affinity_parse(text, "r.conf", ls, &a, err, sizeof err), 0);
    ASSERT_STR_EQ(kiln__affinity_name(a), "rules");
    ASSERT_STR_EQ(pick(a, ls, "3", "KSampler", ""), "cpu:1");
    ASSERT_STR_EQ(pick(a, ls, "4", "VAE Decode", ""), "cpu:2");
    ASSERT_STR_EQ(pick(a, ls, "7", "KSampler", ""), "cpu:0");   /* node beats class */
    ASSERT_STR_EQ(pick(a, ls, "8", "KSampler", ""), "pool");
    ASSERT_STR_EQ(pick(a, ls, "9", "Other", ""), "cpu:2");      /* default */
    ASSERT_STR_EQ(pick(a, ls, "7", "KSampler", "{\"_meta\": {\"lane\": \"cpu:2\"}}"), "cpu:2");
    ASSERT_STR_EQ(pick(a, ls, "7", "KSampler", "{\"_meta\": {\"lane\": \"cpu\"}}"), "pool");
    ASSERT_STR_EQ(pick(a, ls, "7", "KSampler", "{\"_meta\": {\"lane\": \"cpu:5\"}}"), "error");
    kiln__affinity_free(a);
    kiln__lanes_free(ls);
}

static void test_single_policy(void)
{
    kiln__lanes_t *ls = lanes3();
    kiln__affinity_t *a = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(kiln__affinity_new(NULL, ls, &a, err, sizeof err), 0);
    ASSERT_STR_EQ(kiln__affinity_name(a), "single");
    ASSERT_STR_EQ(pick(a, ls, "1", "KSampler", ""), "pool");
    ASSERT_STR_EQ(pick(a, ls, "1", "KSampler", "{\"_meta\": {\"lane\": \"cpu:1\"}}"), "cpu:1");
    kiln__affinity_free(a);
    ASSERT_EQ_INT(kiln__affinity_new("single", ls, &a, err, sizeof err), 0);
    kiln__affinity_free(a);
    kiln__lanes_free(ls);
}

KILN_TEST_MAIN(TEST(test_lane_fifo_and_threads), TEST(test_lane_add_device_lane),
               TEST(test_rules_errors_have_line_numbers), TEST(test_rules_precedence),
               TEST(test_single_policy))
