/*
 * group: one shared stack per test binary, started and stopped by the
 * cmocka group fixtures (see group.h).
 */
#include "group.h"

#include <errno.h>
#include <stdio.h>

struct harness_stack group_stack = {
    .mc = {.pid = -1}, /* stopping a stack never started is a no-op */
    .rv = {.pid = -1},
    .port = -1,
};

int
group_stack_setup(void **state)
{
    (void)state;
    if (harness_stack_start(&group_stack, NULL) != 0) {
        return -1;
    }
    /* prefixed with the binary's name (integ_binary, ...) */
    printf("%s: %s on port %d, memcached on %d\n",
           program_invocation_short_name,
           harness_direct() ? "memcached (direct)" : "riven", group_stack.port,
           group_stack.mc.port);
    return 0;
}

int
group_stack_teardown(void **state)
{
    (void)state;
    harness_stack_stop(&group_stack);
    return 0;
}

struct harness_proc group_mc = {.pid = -1};

int
group_mc_setup(void **state)
{
    (void)state;
    return harness_memcached_start(&group_mc, 0, NULL);
}

int
group_mc_teardown(void **state)
{
    (void)state;
    harness_proc_stop(&group_mc, 5000);
    return 0;
}
