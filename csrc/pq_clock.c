/* Clocks and the sleep that a signal can cut short (see pq_clock.h). A retry
 * wait must not outlast Ctrl-C: nanosleep returns EINTR when a handler ran,
 * and the caller's stop() says whether that handler asked to stop. */
#include "pq_prefix.h"

#include <errno.h>
#include <time.h>

#include "pq_clock.h"

static double pq_clock_read(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double pq_clock_monotonic(void)
{
    return pq_clock_read(CLOCK_MONOTONIC);
}

double pq_clock_realtime(void)
{
    return pq_clock_read(CLOCK_REALTIME);
}

int pq_clock_sleep(double s, int (*stop)(void))
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (stop && stop()) return 0;
    while (nanosleep(&ts, &ts) != 0) {
        if (errno != EINTR) return 1;
        if (stop && stop()) return 0;
    }
    return 1;
}
