/* Periodic housekeeping of the master, as timers on its loop (a Redis-style
 * cron): the stale-node sweep (spec 4.6: nodes marked connected whose
 * master stopped writing last-seen times) and expired-token cleanup.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_JOBS_H
#define CP_JOBS_H

#include "master.h"

/* Starts the timers. With an embedded (single-master) store, nodes left
 * marked connected by an earlier run are marked offline at once. */
void jobs_start(struct master *m);
void jobs_stop(struct master *m);

#endif
