/* libFuzzer target for dataset listing: the input describes a small folder tree, one entry per
 * line: 'd' NAME a folder, 'f' NAME an empty file, 'p' NAME a named pipe, 'l' NAME '>' TARGET a
 * symbolic link (NAME may hold '/'; missing parent folders are made). The tree is built in a
 * temporary folder, listed as a dataset root (dfr_list_train_images) and folder by folder
 * (dfr_list_images), then removed. A listing must hold only regular image files of that folder,
 * sorted; a refusal must name the folder; nothing may crash or hang. */
#include <ftw.h>
#include <strings.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "io/dataset.h"

#define MAX_ENTRIES 48
#define MAX_NAME 200

static char root[64];

static void remove_root(void) { rmdir(root); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* in memory when possible: a disk-backed /tmp makes every input cost milliseconds */
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof root, "%s/dfrcl-fuzz-dataset-XXXXXX", tmp);
    if (!mkdtemp(root)) abort();
    atexit(remove_root);
    return 0;
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

/* Makes the folders above root/rel (rel is modified and restored). */
static void make_parents(char *full)
{
    for (char *s = full + strlen(root) + 1; (s = strchr(s, '/')); *s++ = '/') {
        *s = 0;
        mkdir(full, 0755);
    }
}

/* A relative name without empty, "." or ".." parts (anything else is fair game). */
static int safe_name(const char *n)
{
    if (!*n || *n == '/' || strlen(n) > MAX_NAME) return 0;
    for (const char *s = n; *s;) {
        size_t len = strcspn(s, "/");
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        s += len + (s[len] == '/');
    }
    return 1;
}

/* Whether no folder between root and full is a symbolic link: entries are made only there, so
 * that an input can never make a file outside root through a link it planted. */
static int no_links_above(char *full)
{
    int ok = 1;
    for (char *s = full + strlen(root) + 1; ok && (s = strchr(s, '/')); *s++ = '/') {
        struct stat st;
        *s = 0;
        ok = lstat(full, &st) != 0 || !S_ISLNK(st.st_mode);
    }
    return ok;
}

/* Pass 0 makes folders, files and pipes, pass 1 the links (after which nothing else is made). */
static void build(const char *text, int pass, char dirs[][MAX_NAME + 80], int *ndirs)
{
    char line[MAX_NAME * 2 + 8], full[MAX_NAME + 80];
    int n = 0;
    for (const char *s = text; *s && n < MAX_ENTRIES; n++) {
        size_t len = strcspn(s, "\n");
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, s, len);
        line[len] = 0;
        s += strcspn(s, "\n");
        if (*s) s++;
        char op = line[0], *name = op ? line + 1 : line, *target = NULL;
        if ((op == 'l') != pass) continue;
        if (op == 'l' && (target = strchr(name, '>'))) *target++ = 0;
        if (!safe_name(name)) continue;
        snprintf(full, sizeof full, "%s/%s", root, name);
        if (!no_links_above(full)) continue;
        make_parents(full);
        if (op == 'd' && mkdir(full, 0755) == 0 && *ndirs < MAX_ENTRIES)
            snprintf(dirs[(*ndirs)++], sizeof dirs[0], "%s", full);
        else if (op == 'f') close(open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644));
        else if (op == 'p') mkfifo(full, 0644);
        else if (op == 'l' && target) (void)!symlink(target, full);
    }
}

static void check_list(const char *dir, int rc, const dfr_file_list *l)
{
    if (rc) {
        if (l->count || l->paths) abort();
        fuzz_check_message(root);
        return;
    }
    size_t dl = strlen(dir);
    for (int i = 0; i < l->count; i++) {
        const char *p = l->paths[i], *base = p + dl + 1, *dot = strrchr(base, '.');
        struct stat st;
        int image = dot && base[0] != '.' && (!strcasecmp(dot, ".png") ||
                                              !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
        if (strncmp(p, dir, dl) || p[dl] != '/' || strchr(base, '/') || !image ||
            stat(p, &st) != 0 || !S_ISREG(st.st_mode) || (i && strcmp(l->paths[i - 1], p) >= 0))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    static char dirs[MAX_ENTRIES][MAX_NAME + 80];
    int ndirs = 0;
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    build(text, 0, dirs, &ndirs);
    build(text, 1, dirs, &ndirs);
    free(text);

    dfr_file_list l = {0};
    int rc = dfr_list_train_images(root, &l);
    char good[128];
    snprintf(good, sizeof good, "%s/train/good", root);
    check_list(good, rc, &l);
    if (!rc && l.count == 0) abort(); /* an empty train/good is an error */
    dfr_file_list_free(&l);
    for (int i = 0; i < ndirs; i++) {
        rc = dfr_list_images(dirs[i], &l);
        check_list(dirs[i], rc, &l);
        dfr_file_list_free(&l);
    }
    /* empty the root for the next input */
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(root, 0700);
    return 0;
}
