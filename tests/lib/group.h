/*
 * group: the cmocka group fixtures of integration binaries whose cases all
 * talk to one memcached with riven in front (harness_stack_start).
 *
 * group_stack_setup starts group_stack and prints where clients connect;
 * group_stack_teardown stops it. A binary that has to judge the stack at
 * the end (did riven survive?) writes its own teardown on group_stack.
 */
#ifndef RIVEN_GROUP_H
#define RIVEN_GROUP_H

#include "harness.h"

/* The stack the group's cases use; started by group_stack_setup. */
extern struct harness_stack group_stack;

/* cmocka group setup: harness_stack_start(&group_stack, NULL). 0 or -1. */
int group_stack_setup(void **state);

/* cmocka group teardown: stop group_stack. Always 0. */
int group_stack_teardown(void **state);

/* For binaries that start their own rivens: one memcached for the group,
 * started by group_mc_setup (0 or -1) and stopped by group_mc_teardown. */
extern struct harness_proc group_mc;
int group_mc_setup(void **state);
int group_mc_teardown(void **state);

#endif /* RIVEN_GROUP_H */
