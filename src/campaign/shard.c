/* A campaign split over the tasks of a job array: shard specs, locks, shard records, and the
 * merge of the shards into one summary. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "campaign/campaign.h"
#include "util/error.h"
#include "util/fsutil.h"

/* ---- Shard specs ---- */

/* A whole decimal number in 0..1e6, or -1. */
static long parse_count(const char *s, const char **end)
{
    long v = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p) && v <= 1000000; p++) v = v * 10 + (*p - '0');
    *end = p;
    return p == s || v > 1000000 ? -1 : v;
}

int dfr_shard_check(long i, long n, const char *from)
{
    const char *sep = from ? ": " : "";
    if (!from) from = "";
    if (n < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s%sthe shard count must be at least 1 (got %ld)",
                         from, sep, n);
    if (i < 1 || i > n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s%sshard %ld is outside 1..%ld (shards are "
                         "numbered from 1)", from, sep, i, n);
    return DFRCL_OK;
}

/* An environment variable holding a whole number: 1 if set (value in v), 0 if unset, -1 if bad. */
static int env_count(const char *name, long *v)
{
    const char *s = getenv(name), *end;
    if (!s || !*s) return 0;
    *v = parse_count(s, &end);
    if (*v < 0 || *end) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "%s='%s' is not a whole number", name, s);
        return -1;
    }
    return 1;
}

/* A Slurm job array (task ids from SLURM_ARRAY_TASK_MIN, in steps of SLURM_ARRAY_TASK_STEP) or a
 * Kubernetes Indexed Job (JOB_COMPLETION_INDEX from 0; the count in DFRCL_SHARD_COUNT, as
 * Kubernetes does not give it). */
static int shard_from_env(long *i, long *n)
{
    long id, cnt, min = 0, step = 1;
    int r = env_count("SLURM_ARRAY_TASK_ID", &id);
    if (r < 0) return DFRCL_ERR_INVALID_ARG;
    if (r) {
        if (env_count("SLURM_ARRAY_TASK_COUNT", &cnt) != 1)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "SLURM_ARRAY_TASK_ID is set but "
                             "SLURM_ARRAY_TASK_COUNT is not a count");
        if (env_count("SLURM_ARRAY_TASK_MIN", &min) < 0 || env_count("SLURM_ARRAY_TASK_STEP", &step) < 0)
            return DFRCL_ERR_INVALID_ARG;
        if (step < 1) step = 1;
        if (id < min || (id - min) % step)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "Slurm task %ld is not in the array from %ld "
                             "in steps of %ld; use a plain range (sbatch --array=0-%ld)", id, min,
                             step, cnt - 1);
        *i = (id - min) / step + 1, *n = cnt;
        return dfr_shard_check(*i, *n, "Slurm array");
    }
    r = env_count("JOB_COMPLETION_INDEX", &id);
    if (r < 0) return DFRCL_ERR_INVALID_ARG;
    if (r) {
        if (env_count("DFRCL_SHARD_COUNT", &cnt) != 1)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "JOB_COMPLETION_INDEX is set but not "
                             "DFRCL_SHARD_COUNT; set it to the Job's completions");
        *i = id + 1, *n = cnt;
        return dfr_shard_check(*i, *n, "JOB_COMPLETION_INDEX, DFRCL_SHARD_COUNT");
    }
    return dfr_error(DFRCL_ERR_INVALID_ARG, "neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor "
                     "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set");
}

int dfrcl_campaign_shard_parse(const char *spec, int *index, int *count)
{
    if (index) *index = 0;
    if (count) *count = 0;
    if (!spec) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_campaign_shard_parse: spec is NULL");
    if (!index || !count)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_campaign_shard_parse: %s is NULL",
                         index ? "count" : "index");
    long i = -1, n = -1;
    int rc;
    if (!strcmp(spec, "auto")) rc = shard_from_env(&i, &n);
    else {
        const char *e;
        i = parse_count(spec, &e);
        if (i >= 0 && *e == '/') n = parse_count(e + 1, &e);
        if (i < 0 || n < 0 || *e)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "shard '%s': want I/N (shard I of N, from 1, "
                             "as 2/4) or auto", spec);
        rc = dfr_shard_check(i, n, NULL);
    }
    if (rc) return rc;
    *index = (int)i, *count = (int)n;
    return DFRCL_OK;
}

/* ---- Locks ---- */

static int lock_unsupported(int e) { return e == ENOSYS || e == ENOLCK || e == EOPNOTSUPP || e == EINVAL; }

/* Opens and locks path (exclusive or shared, never waiting): 0 with the descriptor in fd_out
 * (-1 when locks are unsupported: a warning), 1 when another process holds it (its pid, if the
 * file names one, in pid), or an error. */
static int take_lock(const char *path, int shared, int *fd_out, char *pid, size_t pid_n,
                     dfrcl_campaign_fn fn, void *user)
{
    *fd_out = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return dfr_error(DFRCL_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        int e = errno;
        if (lock_unsupported(e)) {
            dfr_campaign_warn(fn, user, "%s: this file system has no file locks (%s); running "
                              "without them: do not start the same run twice", path, strerror(e));
            close(fd);
            return DFRCL_OK;
        }
        ssize_t k = pread(fd, pid, pid_n - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        return 1;
    }
    /* The holder's pid, only informative. A shared holder empties it: no single pid holds it. */
    char t[32];
    int len = shared ? 0 : snprintf(t, sizeof t, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, t, (size_t)len, 0) != len)) { /* informative */ }
    *fd_out = fd;
    return DFRCL_OK;
}

int dfr_campaign_lock(const char *out, int shared, int *fd, int *reason, dfrcl_campaign_fn fn,
                      void *user)
{
    char p[4200], pid[32];
    snprintf(p, sizeof p, "%s/dfrcl-run.lock", out);
    int rc = take_lock(p, shared, fd, pid, sizeof pid, fn, user);
    if (rc != 1) return rc;
    if (shared || pid[0]) {
        *reason = DFRCL_CAMPAIGN_BUSY;
        return dfr_error(DFRCL_ERR_IO, "%s is in use by another 'dfrcl run'%s (pid %s, lock %s); "
                         "wait for it to end or choose another campaign folder", out,
                         shared ? " or merge" : "", pid[0] ? pid : "?", p);
    }
    *reason = DFRCL_CAMPAIGN_BUSY_SHARDS;
    return dfr_error(DFRCL_ERR_IO, "%s is in use by shards of a campaign (locks %s/shards/*.lock); "
                     "wait for them to end or choose another campaign folder", out, out);
}

static void shard_paths(char *rec, char *lock, size_t n, const char *out, int i, int k)
{
    snprintf(rec, n, "%s/shards/%d-of-%d.json", out, i, k);
    snprintf(lock, n, "%s/shards/%d-of-%d.lock", out, i, k);
}

int dfr_campaign_lock_shard(const char *out, int i, int n, int *fd, int *reason,
                            dfrcl_campaign_fn fn, void *user)
{
    char rec[4200], lock[4200], dir[4200], pid[32];
    snprintf(dir, sizeof dir, "%s/shards", out);
    int rc = dfr_mkdir_p(dir);
    if (rc) return rc;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) { /* another count's categories would overlap this one's */
        int ri, rn, len = 0;
        if (sscanf(e->d_name, "%d-of-%d.json%n", &ri, &rn, &len) == 2 &&
            len == (int)strlen(e->d_name) && rn != n) {
            *reason = DFRCL_CAMPAIGN_SHARD_COUNT;
            rc = dfr_error(DFRCL_ERR_INVALID_ARG, "%s holds shard %d/%d's record: the shards of a "
                           "campaign share one count (this is %d/%d); remove %s to split it anew "
                           "(finished categories are kept)", dir, ri, rn, i, n, dir);
            break;
        }
    }
    if (d) closedir(d);
    if (rc) return rc;
    shard_paths(rec, lock, sizeof rec, out, i, n);
    rc = take_lock(lock, 0, fd, pid, sizeof pid, fn, user);
    if (rc == 1) {
        *reason = DFRCL_CAMPAIGN_SHARD_RUNNING;
        return dfr_error(DFRCL_ERR_IO, "shard %d/%d of %s is already running (pid %s, lock %s)", i,
                         n, out, pid[0] ? pid : "?", lock);
    }
    return rc;
}

/* ---- Shard records ---- */

/* A category's status in a shard record: pending until it ends. */
static const char *cat_status(const dfr_cat_result *r, int done)
{
    return !done ? "pending" : r->failed ? "failed" : r->skipped ? "done before" : "ok";
}

int dfr_shard_record_write(const char *out, int i, int n, const cJSON *settings,
                           char *const *names, int count, const dfr_cat_result *res,
                           const int *done, int complete)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "shard", i);
    cJSON_AddNumberToObject(root, "of", n);
    cJSON_AddBoolToObject(root, "complete", complete);
    cJSON_AddItemToObject(root, "settings", cJSON_Duplicate(settings, 1));
    cJSON *all = cJSON_AddArrayToObject(root, "categories");
    cJSON *own = cJSON_AddArrayToObject(root, "results");
    for (int k = 0; k < count; k++) {
        cJSON_AddItemToArray(all, cJSON_CreateString(names[k]));
        if (!dfr_shard_mine(i, n, k)) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "category", names[k]);
        cJSON_AddStringToObject(o, "status", cat_status(&res[k], done[k]));
        if (done[k] && !res[k].skipped && !res[k].failed) cJSON_AddNumberToObject(o, "seconds", res[k].seconds);
        cJSON_AddItemToArray(own, o);
    }
    char *js = cJSON_Print(root);
    cJSON_Delete(root);
    char rec[4200], lock[4200];
    shard_paths(rec, lock, sizeof rec, out, i, n);
    int rc = js ? dfr_write_file_atomic(rec, js, strlen(js)) : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    free(js);
    return rc;
}

/* ---- Merge ---- */

/* Reads a JSON file into *root; an error naming it if absent or not JSON. */
static int read_json(const char *path, cJSON **root)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    *root = NULL;
    int rc = dfr_read_file(path, &buf, &len);
    if (rc) return rc;
    *root = cJSON_Parse((const char *)buf);
    free(buf);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return dfr_error(DFRCL_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return DFRCL_OK;
}

static int json_int(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* A merge in progress: every problem is reported (not only the first), counted, and the first
 * kept for the final message. */
typedef struct merge {
    const char *out;
    dfrcl_campaign_fn fn;
    void *user;
    int bad;
    char first[1024];
} merge;

static void problem(merge *m, int reason, int shards, const char *f, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, f);
    vsnprintf(msg, sizeof msg, f, ap);
    va_end(ap);
    if (!m->bad++) snprintf(m->first, sizeof m->first, "%.1000s", msg);
    dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_PROBLEM, .message = msg, .reason = reason,
                              .shard_count = shards};
    if (m->fn) dfr_campaign_emit(m->fn, m->user, &e);
}

static int refused(merge *m)
{
    return dfr_error(DFRCL_ERR_INVALID_ARG, "merge of %s refused: %d problem%s (%s%s)", m->out,
                     m->bad, m->bad == 1 ? "" : "s", m->first, m->bad > 1 ? "; and more" : "");
}

/* The records of out/shards: all of one count n, each 1..n present; recs[i - 1] = shard i's. */
static int load_shard_records(merge *m, cJSON **recs, int *n_out, int *reason)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/shards", m->out);
    DIR *d = opendir(dir);
    int n = 0;
    char first[300] = "";
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int i, k, len = 0;
        if (sscanf(e->d_name, "%d-of-%d.json%n", &i, &k, &len) != 2 || len != (int)strlen(e->d_name)) continue;
        if (!n) n = k, snprintf(first, sizeof first, "%s", e->d_name);
        else if (k != n)
            problem(m, 0, 0, "%s holds shards of two counts (%s, %s): remove the stale ones", dir,
                    first, e->d_name);
    }
    if (d) closedir(d);
    if (m->bad) return refused(m);
    if (n < 1 || n > DFR_CAMPAIGN_MAX_CATEGORIES) {
        *reason = DFRCL_CAMPAIGN_NO_SHARDS;
        return dfr_error(DFRCL_ERR_IO, "%s: no shard records (%s/I-of-N.json): run the shards "
                         "first", m->out, dir);
    }
    char missing[2048] = "";
    for (int i = 1; i <= n; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%d-of-%d.json", dir, i, n);
        if (!dfr_path_exists(p)) {
            size_t u = strlen(missing);
            snprintf(missing + u, sizeof missing - u, "%s%d/%d", u ? ", " : "", i, n);
            continue;
        }
        if (read_json(p, &recs[i - 1])) {
            problem(m, 0, n, "%s", dfrcl_last_error());
            continue;
        }
        if (json_int(recs[i - 1], "shard") != i || json_int(recs[i - 1], "of") != n ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(recs[i - 1], "settings")) ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(recs[i - 1], "categories")) ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(recs[i - 1], "results")))
            problem(m, 0, n, "%s: not a dfrcl shard record of shard %d/%d", p, i, n);
    }
    if (missing[0])
        problem(m, DFRCL_CAMPAIGN_MISSING_SHARDS, n, "%s: missing shard%s %s: run %s with the "
                "same settings", m->out, strchr(missing, ',') ? "s" : "", missing,
                strchr(missing, ',') ? "them" : "it");
    *n_out = n;
    return m->bad ? refused(m) : DFRCL_OK;
}

/* The result of category name from shard (rec, i of n): its status and time from the record, its
 * metrics from out/name/metrics.json, its settings checked against the shard's. */
static void merge_category(merge *m, const cJSON *rec, int i, int n, const char *name,
                           dfr_cat_result *r)
{
    snprintf(r->name, sizeof r->name, "%s", name);
    const cJSON *e = NULL, *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(rec, "results"))
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "category");
        if (cJSON_IsString(c) && !strcmp(c->valuestring, name)) e = it;
    }
    const cJSON *st = e ? cJSON_GetObjectItemCaseSensitive(e, "status") : NULL;
    const char *s = cJSON_IsString(st) ? st->valuestring : "";
    if (!e) {
        problem(m, 0, n, "category %s is missing from shard %d/%d's record", name, i, n);
        return;
    }
    if (strcmp(s, "ok") && strcmp(s, "done before") && strcmp(s, "failed")) {
        problem(m, DFRCL_CAMPAIGN_UNFINISHED, n, "category %s of shard %d/%d has not finished (%s): "
                "wait for the shard, or run it again with its settings", name, i, n, s[0] ? s : "?");
        return;
    }
    r->failed = !strcmp(s, "failed");
    r->skipped = !strcmp(s, "done before");
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(e, "seconds");
    r->seconds = cJSON_IsNumber(sec) ? sec->valuedouble : NAN;
    if (r->failed) return;
    dfr_cat_files f;
    dfr_cat_paths(&f, m->out, name);
    if (!dfr_path_exists(f.metrics)) {
        problem(m, 0, n, "category %s (shard %d/%d): %s is missing", name, i, n, f.metrics);
        return;
    }
    if (dfr_campaign_read_metrics(f.metrics, r)) {
        problem(m, 0, n, "category %s (shard %d/%d): %s", name, i, n, dfrcl_last_error());
        return;
    }
    char diff[1024];
    if (!dfr_settings_same(f.settings, cJSON_GetObjectItemCaseSensitive(rec, "settings"), diff, sizeof diff))
        problem(m, 0, n, "category %s: %s differs from shard %d/%d's settings: %s", name,
                f.settings, i, n, diff);
}

/* Checks that every shard ran one campaign (the same settings and categories) and merges each
 * category from its shard into res (ncat of them). */
static int merge_records(merge *m, cJSON **recs, int n, dfr_cat_result **res, int *ncat)
{
    const cJSON *set1 = cJSON_GetObjectItemCaseSensitive(recs[0], "settings");
    const cJSON *cats1 = cJSON_GetObjectItemCaseSensitive(recs[0], "categories");
    *ncat = cJSON_GetArraySize(cats1);
    for (int i = 2; i <= n; i++) {
        char diff[1024];
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(recs[i - 1], "settings");
        if (!dfr_settings_diff(set1, set, diff, sizeof diff))
            problem(m, 0, n, "shard %d/%d ran with other settings than shard 1/%d: %s", i, n, n, diff);
        if (!cJSON_Compare(cats1, cJSON_GetObjectItemCaseSensitive(recs[i - 1], "categories"), 1))
            problem(m, 0, n, "shard %d/%d ran over other categories than shard 1/%d (another "
                    "dataset root or category list)", i, n, n);
    }
    if (*ncat < 1 || *ncat > DFR_CAMPAIGN_MAX_CATEGORIES) problem(m, 0, n, "shard 1/%d lists no categories", n);
    if (m->bad) return refused(m);
    *res = calloc((size_t)*ncat, sizeof **res);
    if (!*res) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (int k = 0; k < *ncat; k++) {
        const cJSON *c = cJSON_GetArrayItem(cats1, k);
        if (!cJSON_IsString(c)) {
            problem(m, 0, n, "shard 1/%d: category %d is not a name", n, k + 1);
            continue;
        }
        int i = k % n + 1;
        merge_category(m, recs[i - 1], i, n, c->valuestring, &(*res)[k]);
    }
    return m->bad ? refused(m) : DFRCL_OK;
}

int dfrcl_campaign_merge(const char *out, dfrcl_campaign_fn on_event, void *user,
                         dfrcl_campaign_result *res)
{
    if (res) memset(res, 0, sizeof *res);
    if (!out || !*out) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_campaign_merge: no out folder");
    merge m = {.out = out, .fn = on_event, .user = user};
    cJSON *recs[DFR_CAMPAIGN_MAX_CATEGORIES] = {0};
    dfr_cat_result *cats = NULL;
    int n = 0, ncat = 0, lock_fd = -1, reason = 0;
    int rc = dfr_path_exists(out) ? DFRCL_OK
                                  : dfr_error(DFRCL_ERR_IO, "%s: no such campaign folder", out);
    if (!rc) rc = dfr_campaign_lock(out, 0, &lock_fd, &reason, on_event, user);
    if (!rc) rc = load_shard_records(&m, recs, &n, &reason);
    if (!rc) rc = merge_records(&m, recs, n, &cats, &ncat);
    if (rc && m.bad) reason = DFRCL_CAMPAIGN_MERGE_REFUSED;
    if (!rc) {
        const cJSON *set1 = cJSON_GetObjectItemCaseSensitive(recs[0], "settings");
        dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_MERGING, .count = ncat, .shard_count = n};
        dfr_campaign_emit(on_event, user, &e);
        dfr_run_setting rs = {json_int(set1, "layers"), json_int(set1, "size"), json_int(set1, "epochs")};
        rc = dfr_campaign_write_summary(out, cats, ncat, rs, on_event, user);
    }
    if (res) {
        res->reason = reason;
        res->shard_count = n;
        res->categories = res->own = ncat;
        for (int k = 0; cats && k < ncat; k++) {
            res->failed += cats[k].failed;
            res->skipped += cats[k].skipped;
            res->ran += !cats[k].failed && !cats[k].skipped;
        }
    }
    for (int i = 0; i < n && i < DFR_CAMPAIGN_MAX_CATEGORIES; i++) cJSON_Delete(recs[i]);
    free(cats);
    if (lock_fd >= 0) close(lock_fd);
    return rc;
}
