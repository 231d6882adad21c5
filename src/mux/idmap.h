/*
 * idmap: stream id -> stream, an open-addressing hash table of pointers.
 *
 * The key is read from the element itself (its first member must be the
 * uint32_t id), so a slot costs one pointer.  Removal shifts entries back
 * instead of leaving tombstones, so lookups never degrade with churn.  The
 * hash is keyed with a random key per process: the ids a peer chooses
 * cannot make lookups slow.
 */
#ifndef MXD_IDMAP_H
#define MXD_IDMAP_H

#include <stdint.h>

struct idmap {
	void		**slots;
	uint32_t	mask;	/* capacity - 1; capacity is a power of 2 */
	uint32_t	count;
};

/* Initialise empty map ${map}. */
void idmap_init(struct idmap *map);

/* Free ${map}'s table (not the elements). */
void idmap_destroy(struct idmap *map);

/* The element with id ${id} in ${map}, or NULL. */
void *idmap_get(const struct idmap *map, uint32_t id);

/* Insert ${elem} (id not present).  Returns 0, or -1 on ENOMEM. */
int idmap_put(struct idmap *map, void *elem);

/* The number of slots a lookup of ${id} in ${map} examines (whether or
 * not ${id} is present): its cost, for tests.  0 for an empty map. */
uint32_t idmap_probes(const struct idmap *map, uint32_t id);

/* Remove the element with id ${id} from ${map}, if present. */
void idmap_del(struct idmap *map, uint32_t id);

/*
 * Empty ${map}, then call ${fn}(element, ${arg}) for every element it held.
 * ${fn} may call idmap_del (a no-op by then) or idmap_put.
 */
void idmap_drain(struct idmap *map, void (*fn)(void *, void *), void *arg);

#endif
