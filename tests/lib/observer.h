/*
 * observer: a thread that keeps doing exact round trips on its own
 * connection while a test attacks riven on others. A case passes only if
 * the observer saw no wrong byte and kept being served: after the case it
 * must complete 20 more round trips within HARNESS_TIMEOUT_MS.
 */
#ifndef RIVEN_OBSERVER_H
#define RIVEN_OBSERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

/* Round trip number i on c (the caller's protocol and keys); true when
 * every reply byte was the expected one. */
typedef bool (*observer_trip_fn)(struct harness_conn *c, unsigned long i);

struct observer;

/* Start an observer doing trip on its own connection to 127.0.0.1:port.
 * With warmup > 0, wait for that many round trips first; the slowest
 * round trip is counted from there. Asserts the thread started. */
struct observer *observer_start(int port, observer_trip_fn trip,
                                unsigned long warmup);

/* Wait for 20 more round trips (or an error, or HARNESS_TIMEOUT_MS), stop
 * and free ob, print what it saw. true when it made them without an
 * error and, if slow_ms > 0, none took slow_ms or more. NULL: true. */
bool observer_finish(struct observer *ob, int64_t slow_ms);

/* The prestate of a case run under observer_setup/observer_teardown. */
struct observer_conf {
    observer_trip_fn trip;
};

/* cmocka case fixtures: an observer of group_stack (group.h) runs around
 * the case, and is stopped and judged even when the case failed.
 * *state starts as a const struct observer_conf *. */
int observer_setup(void **state);
int observer_teardown(void **state);

#endif /* RIVEN_OBSERVER_H */
