/* Clocks and an interruptible sleep, in plain C. */
#ifndef PQ_CLOCK_H
#define PQ_CLOCK_H

/* Seconds from an arbitrary origin that never jumps back. */
double pq_clock_monotonic(void);
/* Unix time in seconds, with a fraction. */
double pq_clock_realtime(void);

/* Sleeps for s seconds (0 <= s). When a signal handler interrupts the sleep
 * and caught() then differs from its value at the start, stops early:
 * returns 1 after the full sleep, 0 when cut short. caught may be NULL (never
 * cut short). */
int pq_clock_sleep(double s, unsigned long (*caught)(void));

#endif
