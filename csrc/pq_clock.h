/* Clocks and an interruptible sleep, in plain C. */
#ifndef PQ_CLOCK_H
#define PQ_CLOCK_H

/* Seconds from an arbitrary origin that never jumps back. */
double pq_clock_monotonic(void);
/* Unix time in seconds, with a fraction. */
double pq_clock_realtime(void);

/* Sleeps for s seconds (0 <= s) unless stop() says to stop: it is asked
 * first, and again whenever a signal handler interrupts the sleep, so a
 * signal that came just before the sleep cuts it as well as one during it.
 * Returns 1 after the full sleep, 0 when cut short. stop may be NULL. */
int pq_clock_sleep(double s, int (*stop)(void));

#endif
