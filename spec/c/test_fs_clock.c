/* Unit test of pq_fs (write-all, directory sync: every failure reported) and
 * pq_clock (a sleep that a signal asking to stop cuts short or never begins,
 * and that another signal does not cut). Prints one line per failed check and a total. */
#include "pq_prefix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "pq_clock.h"
#include "pq_fs.h"
#include "test_check.h"


static void test_write_all(void)
{
    size_t written = 99;
    int fds[2], fd;
    char got[8] = "";
    CHECK(pipe(fds) == 0);
    CHECK(pq_fs_write_all(fds[1], "hello", 5, &written) == 0 && written == 5);
    CHECK(read(fds[0], got, sizeof got) == 5 && memcmp(got, "hello", 5) == 0);
    close(fds[0]);
    close(fds[1]);
    CHECK(pq_fs_write_all(fds[1], "x", 1, &written) == EBADF && written == 0);
    fd = open("/dev/full", O_WRONLY);
    if (fd >= 0) {
        CHECK(pq_fs_write_all(fd, "x", 1, NULL) == ENOSPC);
        close(fd);
    }
}

static void test_sync_dir(void)
{
    char *longpath = malloc(PATH_MAX + 64);
    CHECK(pq_fs_sync_dir("/tmp/file") == 0);
    CHECK(pq_fs_sync_dir("file-in-cwd") == 0);
    CHECK(pq_fs_sync_dir("/file-in-root") == 0);
    CHECK(pq_fs_sync_dir("/no/such/dir/file") == ENOENT);
    CHECK(pq_fs_sync_dir("/etc/hostname/file") == ENOTDIR);
    if (longpath) {
        memset(longpath, 'd', PATH_MAX + 32);
        longpath[0] = '/';
        strcpy(longpath + PATH_MAX + 32, "/file");
        CHECK(pq_fs_sync_dir(longpath) == ENAMETOOLONG);
        free(longpath);
    }
}

static volatile sig_atomic_t test_counted;

static void test_on_alarm(int sig)
{
    (void)sig;
    test_counted = test_counted + 1;
}

static void test_on_alarm_uncounted(int sig)
{
    (void)sig;
}

static int test_stop(void)
{
    return test_counted > 0;
}

/* Arms a one-shot SIGALRM after ms milliseconds, handled by fn. */
static void test_alarm(void (*fn)(int), long ms)
{
    struct sigaction sa;
    struct itimerval it;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = ms / 1000;
    it.it_value.tv_usec = (ms % 1000) * 1000;
    setitimer(ITIMER_REAL, &it, NULL);
}

static void test_sleep(void)
{
    double t0 = pq_clock_monotonic();
    CHECK(pq_clock_sleep(0.01, NULL) == 1 && pq_clock_monotonic() - t0 >= 0.01);
    CHECK(pq_clock_realtime() > 1.6e9);
    test_alarm(test_on_alarm_uncounted, 10);
    t0 = pq_clock_monotonic();
    CHECK(pq_clock_sleep(0.1, test_stop) == 1 && pq_clock_monotonic() - t0 >= 0.1);
    test_alarm(test_on_alarm, 20);
    t0 = pq_clock_monotonic();
    CHECK(pq_clock_sleep(30, test_stop) == 0);
    CHECK(pq_clock_monotonic() - t0 < 20);
    /* Asked to stop before it began: no wait at all. */
    CHECK(pq_clock_sleep(30, test_stop) == 0 && pq_clock_monotonic() - t0 < 20);
}

int main(void)
{
    test_write_all();
    test_sync_dir();
    test_sleep();
    return test_total();
}
