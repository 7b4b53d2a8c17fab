/* A write that fails half-way reports RMKV_ERR_IO, leaves the previous file
   byte for byte and leaves no temporary file behind. For every file rmkv writes
   (session state, model, checkpoint, tokenizer):
   - a full disk: RLIMIT_FSIZE below the new file's size (SIGXFSZ ignored, so the
     write fails with EFBIG, as it would with ENOSPC); it holds for root too;
   - a read-only directory: chmod 0555. Root ignores permission bits, so when the
     test runs as root the writing thread first takes an unprivileged file-system
     user id (setfsuid(65534), which drops CAP_DAC_OVERRIDE and the other file
     capabilities of that thread), for which 0555 really refuses;
   - a directory that cannot exist (its parent is a regular file: ENOTDIR).
   And a writer killed with SIGKILL in the middle of writing (a child process
   saving a 32 MB model over and over) leaves the last complete file, which
   loads, and no temporary file: the file being written has no name yet. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static const char *cfg =
    "{\"vocab_size\":300,\"d_model\":16,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":4,\"segment_len\":8}";

typedef struct {
    rmkv_model *model;
    rmkv_session *session;
    rmkv_trainer *trainer;
    rmkv_model *train_model;
    rmkv_tokenizer *tok;
} objects;

static objects O;

enum { KIND_STATE, KIND_MODEL, KIND_CHECKPOINT, KIND_TOKENIZER, N_KINDS };
static const char *kind_names[N_KINDS] = {"state", "model", "checkpoint", "tokenizer"};

/* Writes the kind's file; `variant` changes what is written (so the new file differs). */
static rmkv_status write_kind(int kind, const char *path, int variant) {
    int32_t toks[5] = {1, 2, 3, 4, 5};
    switch (kind) {
    case KIND_STATE:
        if (variant) RMKV_CHECK(rmkv_session_step(O.session, toks, 1, NULL)); /* a larger state: one more cached token */
        return rmkv_session_state_save_file(O.session, path);
    case KIND_MODEL:
        return rmkv_model_save_as(O.model, path, variant ? RMKV_DTYPE_F32 : RMKV_DTYPE_BF16);
    case KIND_CHECKPOINT:
        return rmkv_trainer_save_checkpoint(O.trainer, path, variant ? "{\"v\":\"second, longer user data\"}" : "{\"v\":1}");
    default: {
        rmkv_tokenizer *t = NULL;
        const char *texts[1] = {variant ? "a different and longer corpus for the second tokenizer" : "first corpus"};
        rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
        p.vocab_size = 290;
        RMKV_CHECK(rmkv_tokenizer_train_from_texts(texts, NULL, 1, &p, &t));
        rmkv_status st = rmkv_tokenizer_save(t, path);
        rmkv_tokenizer_free(t);
        return st;
    }
    }
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A fresh directory holding the previous file; returns its path in dir/path. */
static void prepare(int kind, const char *tag, char *dir, char *path, uint8_t **old, size_t *old_size) {
    snprintf(dir, 512, "%s", tmp_path(tag));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, 600, "%s/%s.file", dir, kind_names[kind]);
    RMKV_CHECK(write_kind(kind, path, 0));
    *old = read_whole(path, old_size);
    assert_non_null(*old);
}

static void assert_unchanged(const char *dir, const char *path, const uint8_t *old, size_t old_size) {
    size_t now_size = 0;
    uint8_t *now = read_whole(path, &now_size);
    assert_non_null(now);
    assert_int_equal(now_size, old_size);
    assert_memory_equal(now, old, old_size);
    free(now);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left */
}

static void full_disk(void **state) {
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    for (int kind = 0; kind < N_KINDS; ++kind) {
        char dir[512], path[600];
        uint8_t *old;
        size_t old_size;
        prepare(kind, "full-disk", dir, path, &old, &old_size);
        struct rlimit saved, lim;
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        lim = saved;
        lim.rlim_cur = old_size / 2; /* room for half of a file */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        rmkv_status st = write_kind(kind, path, 1);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", rmkv_last_error());
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        if (st != RMKV_ERR_IO) fail_msg("%s on a full disk: %s (%s)", kind_names[kind], rmkv_status_string(st), msg);
        print_message("%s, full disk: %s\n", kind_names[kind], msg);
        assert_non_null(strstr(msg, path));
        assert_unchanged(dir, path, old, old_size);
        /* with room again the same write succeeds and replaces the file */
        RMKV_CHECK(write_kind(kind, path, 1));
        size_t new_size;
        uint8_t *now = read_whole(path, &new_size);
        assert_true(new_size != old_size || memcmp(now, old, old_size) != 0);
        free(now);
        free(old);
    }
}

static void read_only_directory(void **state) {
    (void)state;
    for (int kind = 0; kind < N_KINDS; ++kind) {
        char dir[512], path[600];
        uint8_t *old;
        size_t old_size;
        prepare(kind, "read-only", dir, path, &old, &old_size);
        assert_int_equal(chmod(dir, 0555), 0);
        int as_root = geteuid() == 0;
        if (as_root) {
            setfsuid(65534);
            assert_int_equal(setfsuid((uid_t)-1), 65534);
        }
        rmkv_status st = write_kind(kind, path, 1);
        if (as_root) {
            setfsuid(0);
            assert_int_equal(setfsuid((uid_t)-1), 0);
        }
        if (st != RMKV_ERR_IO) fail_msg("%s into a read-only directory: %s (%s)", kind_names[kind], rmkv_status_string(st), rmkv_last_error());
        print_message("%s, read-only directory: %s\n", kind_names[kind], rmkv_last_error());
        assert_non_null(strstr(rmkv_last_error(), path));
        assert_unchanged(dir, path, old, old_size);
        assert_int_equal(chmod(dir, 0755), 0);
        free(old);
    }
}

static void parent_is_a_file(void **state) {
    (void)state;
    const char *file = tmp_path("plain-file");
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    fputs("not a directory", f);
    fclose(f);
    char path[600];
    for (int kind = 0; kind < N_KINDS; ++kind) {
        snprintf(path, sizeof path, "%s/%s.file", file, kind_names[kind]);
        RMKV_EXPECT(RMKV_ERR_IO, write_kind(kind, path, 1));
        assert_non_null(strstr(rmkv_last_error(), path));
    }
    remove(file);
}

/* The child of killed_mid_write: saves a large model to `path` until killed. */
static int writer_loop(const char *path) {
    rmkv_model *m = make_model("{\"vocab_size\":16384,\"d_model\":512,\"n_layers\":1,\"n_heads\":8,"
                               "\"memory_slots\":4,\"segment_len\":8}", 3);
    for (int i = 0;; ++i) RMKV_CHECK(rmkv_model_save_as(m, path, i % 2 ? RMKV_DTYPE_F32 : RMKV_DTYPE_BF16));
}

/* How many descriptors of process `pid` are open on files in `dir` (a write in progress). */
static int open_in(pid_t pid, const char *dir) {
    char fds[64], link[1024], target[1024];
    snprintf(fds, sizeof fds, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(fds);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    size_t len = strlen(dir);
    while ((e = readdir(d))) {
        snprintf(link, sizeof link, "%s/%s", fds, e->d_name);
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k <= 0) continue;
        target[k] = '\0';
        n += strncmp(target, dir, len) == 0 && target[len] == '/';
    }
    closedir(d);
    return n;
}

static void killed_mid_write(void **state) {
    (void)state;
    char dir[512], path[600], cmd[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("killed"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    srand((unsigned)time(NULL));
    int inside = 0, rounds = 0;
    for (; rounds < 8; ++rounds) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            execl("/proc/self/exe", "test_write_failures", "--writer", path, (char *)NULL);
            _exit(127);
        }
        /* Until the first complete file; then until a write is open (checked every
           0.2 ms, for at most 5 s), and 0 to 3 ms more into it. */
        for (int i = 0; i < 3000 && access(path, F_OK) != 0; ++i) usleep(10000);
        assert_int_equal(access(path, F_OK), 0);
        int open_now = 0;
        for (int i = 0; i < 25000 && !(open_now = open_in(pid, dir)); ++i) usleep(200);
        inside += open_now > 0;
        usleep((useconds_t)(rand() % 3000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(count_entries(dir), 1); /* the model, no temporary file */
        rmkv_model *m = NULL;
        RMKV_CHECK(rmkv_model_load(path, NULL, &m));
        rmkv_model_free(m);
    }
    print_message("%d kills, %d of them while a write was open; no temporary file left, every file loads\n", rounds,
                  inside);
    assert_true(inside >= rounds / 2);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state) {
    (void)state;
    O.model = make_model(cfg, 1);
    RMKV_CHECK(rmkv_session_new(O.model, NULL, &O.session));
    int32_t t[3] = {7, 8, 9};
    RMKV_CHECK(rmkv_session_step(O.session, t, 3, NULL));
    O.train_model = make_model(cfg, 2);
    RMKV_CHECK(rmkv_trainer_new(O.train_model, NULL, &O.trainer));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rmkv_trainer_free(O.trainer);
    rmkv_model_free(O.train_model);
    rmkv_session_free(O.session);
    rmkv_model_free(O.model);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--writer")) return writer_loop(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_disk),
        cmocka_unit_test(read_only_directory),
        cmocka_unit_test(parent_is_a_file),
        cmocka_unit_test(killed_mid_write),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
