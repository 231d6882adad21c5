/*
 * ms: durations in milliseconds, as the configuration gives them, turned
 * into the struct timeval libevent's timers take.
 */
#ifndef MXD_MS_H
#define MXD_MS_H

#include <stdint.h>
#include <sys/time.h>

/* ${ms} milliseconds as a struct timeval. */
static inline struct timeval
ms_timeval(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)(ms % 1000) * 1000 };

	return (tv);
}

#endif
