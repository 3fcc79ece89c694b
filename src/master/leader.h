/* Leader election through the store (DESIGN.md "HA", spec 6; issue 6).
 *
 * Every master tries to hold the lease "leader" (store lease_acquire):
 * the holder renews it every KONTENA_LEADER_RENEW_MS (3 s) for
 * KONTENA_LEADER_TTL_MS (10 s); the others try every second, so a
 * crashed leader is replaced within TTL + 1 s and a leader that shuts
 * down cleanly (it releases the lease) within about a second. There is no
 * voluntary stepping down: leadership changes only when the holder stops
 * renewing.
 *
 * A master believes it leads only until its last successful renewal's
 * start + TTL - (renew interval + clock skew allowance), measured on its
 * monotonic clock, so a master that was paused or cut off from the store
 * stops acting before another can take over. Leader-only writes that
 * must not race (the stale-node sweep) are also fenced in the store by
 * the holder id (store_fence).
 *
 * leader_is() and leader_status() may be called from any thread.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_LEADER_H
#define CP_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "master.h"

#define LEADER_LEASE "leader"

struct leader_status {
    bool is_leader;
    char leader_id[33]; /* "" when unknown / none */
    int64_t leader_expires_at; /* wall ms of the lease, 0 when unknown */
    int64_t since;      /* wall ms this master became leader, 0 if not */
    int64_t changes;    /* times this master gained leadership */
    int last_rc;        /* last lease call: 0, CP_EAGAIN, CP_EIO, ... */
};

/* Starts the election timer on m's loop (first attempt at once). */
void leader_start(struct master *m);
/* Stops trying and releases the lease if held (on a worker thread; the
 * master's shutdown waits for it). */
void leader_stop(struct master *m);

bool leader_is(struct master *m);
void leader_status(struct master *m, struct leader_status *out);
/* The fence for leader-only store writes: {LEADER_LEASE, master_id}. */
struct store_fence leader_fence(struct master *m);

#endif
