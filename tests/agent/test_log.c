/*
 * test_log.c -- the agent's log lines: the level filters them, and the
 * level can change (SIGHUP) while other threads log. The second test is a
 * data race unless the level is atomic; ThreadSanitizer sees it
 * (-DEMBEDDB_SANITIZE=thread), plain builds only run it.
 */
#include "log.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static void test_level_filters_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/embeddb-log-XXXXXX", text[512] = "";
    FILE *saved = stderr;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    stderr = fdopen(fd, "w+");
    assert_non_null(stderr);
    agent_log_set_level(LOG_LEVEL_NOTICE);
    agent_log(LOG_LEVEL_INFO, "dropped %d", 1);
    agent_log(LOG_LEVEL_WARNING, "kept %d", 2);
    log_limit lim = {0};
    for (int i = 0; i < 5; i++)
        agent_log_limited(&lim, 2, 60000, LOG_LEVEL_ERROR, "limited %d", i);
    agent_log_limited(&lim, 2, 60000, LOG_LEVEL_DEBUG, "below the level");
    fflush(stderr);
    rewind(stderr);
    size_t n = fread(text, 1, sizeof(text) - 1, stderr);
    text[n] = 0;
    fclose(stderr);
    stderr = saved;
    unlink(path);
    agent_log_set_level(LOG_LEVEL_INFO);
    assert_string_equal(text, "<4>embeddb-agent: kept 2\n"
                              "<3>embeddb-agent: limited 0\n"
                              "<3>embeddb-agent: limited 1\n");
}

static void *logger(void *arg)
{
    log_limit lim = {0};
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        agent_log(LOG_LEVEL_DEBUG, "debug %d", i);
        agent_log_limited(&lim, 1, 1, LOG_LEVEL_DEBUG, "limited %d", i);
    }
    return NULL;
}

static void test_level_changes_while_threads_log(void **state)
{
    (void)state;
    pthread_t t[3];
    FILE *saved = stderr;
    /* The lines go nowhere; TSan reports go to fd 2, untouched. */
    stderr = fopen("/dev/null", "w");
    assert_non_null(stderr);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, logger, NULL), 0);
    for (int i = 0; i < 20000; i++)
        agent_log_set_level(i % 2 ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    fclose(stderr);
    stderr = saved;
    agent_log_set_level(LOG_LEVEL_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_filters_lines),
        cmocka_unit_test(test_level_changes_while_threads_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
