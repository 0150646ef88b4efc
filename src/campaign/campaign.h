/* Campaigns (include/dfrcl.h, dfrcl_campaign_*): what the run, its shards, the merge and the
 * summary share inside the library. */
#ifndef DFRCL_CAMPAIGN_CAMPAIGN_H
#define DFRCL_CAMPAIGN_CAMPAIGN_H

#include <cjson/cJSON.h>

#include "dfrcl.h"

#define DFR_CAMPAIGN_MAX_CATEGORIES 256

/* One category's outcome, as the summary shows it. */
typedef struct dfr_cat_result {
    char name[256];
    double pixel_auroc, image_auroc, aupro, f1;
    double seconds;
    int skipped, failed;
} dfr_cat_result;

/* What the campaign ran with, to say how far it is from the published setting. */
typedef struct dfr_run_setting {
    int layers, size, epochs;
} dfr_run_setting;

/* Reports an event to the caller (NULL fn: none); its return value stops the run. */
int dfr_campaign_emit(dfrcl_campaign_fn fn, void *user, dfrcl_campaign_event *e);
/* A WARNING event, or stderr without a callback. */
void dfr_campaign_warn(dfrcl_campaign_fn fn, void *user, const char *fmt, ...);

/* A category's files in the campaign folder. */
typedef struct dfr_cat_files {
    char dir[4400], model[4500], metrics[4500], eval[4500], ck[4500], settings[4500];
} dfr_cat_files;
void dfr_cat_paths(dfr_cat_files *f, const char *out, const char *name);
int dfr_path_exists(const char *p);

/* Reads a category's metrics (its metrics.json) into r. */
int dfr_campaign_read_metrics(const char *path, dfr_cat_result *r);
/* 1 if every setting of now is the same in old, else 0 with "epochs 1 -> 2, size 32 -> 64". */
int dfr_settings_diff(const cJSON *old, const cJSON *now, char *diff, size_t n);
/* The same against a category's settings.json; a missing or unreadable file differs too. */
int dfr_settings_same(const char *path, const cJSON *now, char *diff, size_t n);

/* Writes out/summary.html, .json and .csv and, on success, sends the SUMMARY event with the
 * table as text. */
int dfr_campaign_write_summary(const char *out, const dfr_cat_result *r, int n, dfr_run_setting rs,
                               dfrcl_campaign_fn fn, void *user);

/* Locks (flocks: the kernel drops them when the process ends, however it ends). */
/* out/dfrcl-run.lock: exclusive for an unsharded run or a merge, shared by shards. On refusal
 * *reason is set. *fd is -1 when the file system has no locks (a warning is sent). */
int dfr_campaign_lock(const char *out, int shared, int *fd, int *reason, dfrcl_campaign_fn fn,
                      void *user);
/* out/shards/I-of-N.lock, after checking that out/shards holds no record of another count. */
int dfr_campaign_lock_shard(const char *out, int i, int n, int *fd, int *reason,
                            dfrcl_campaign_fn fn, void *user);

/* Shard i of n (1-based; n == 0: not sharded) takes the categories whose index (in sorted
 * order) is i - 1 modulo n. */
static inline int dfr_shard_mine(int i, int n, int k) { return n == 0 || k % n == i - 1; }
/* Checks shard i of n: n >= 1 and 1 <= i <= n (message prefixed by `from` when not NULL). */
int dfr_shard_check(long i, long n, const char *from);

/* out/shards/I-of-N.json: the shard, its settings, every category of the campaign, and its own
 * with their status (done[k] == 0: pending) and time; complete once it ended without error. */
int dfr_shard_record_write(const char *out, int i, int n, const cJSON *settings,
                           char *const *names, int count, const dfr_cat_result *res,
                           const int *done, int complete);
#endif
