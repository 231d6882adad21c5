/*
 * idmap: see idmap.h.  Linear probing, kept at most half full.
 *
 * The peer chooses the ids of its streams (any new id of its parity), so
 * an id's home slot must be one it cannot predict: with a fixed mix, ids
 * picked to share one slot make every lookup walk the whole run (30,000
 * such ids made 100,000 window updates take 13 s instead of 7 ms, with the
 * event loop stalled meanwhile).  The home slot is SipHash-1-3 of the id
 * under a key drawn once per process from getrandom(2), so the cost of a
 * lookup does not depend on the ids the peer picks.
 */
#include <sys/random.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idmap.h"

/* SipHash's state after the key is mixed in; all zero until keyed.  Set
 * once, before the first map is used (the engine is single-threaded). */
static uint64_t sip_v[4];
static int keyed;

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound on ${v}. */
static inline void
sipround(uint64_t v[4])
{

	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

/*
 * Draw the process's key.  getrandom(2) blocks only until the kernel's
 * pool is first initialised, early at boot; without it (Linux < 3.17) the
 * key comes from the clock and the address space layout, which a remote
 * peer cannot see either.
 */
static void
key_init(void)
{
	uint64_t k[2];
	struct timespec ts;
	ssize_t n;

	while ((n = getrandom(k, sizeof(k), 0)) != (ssize_t)sizeof(k)) {
		if (n < 0 && errno == EINTR)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		k[0] = (uint64_t)ts.tv_sec << 32 ^ (uint64_t)ts.tv_nsec;
		k[1] = (uint64_t)(uintptr_t)&ts ^ (uint64_t)(uintptr_t)k;
		break;
	}
	sip_v[0] = k[0] ^ 0x736f6d6570736575ull;
	sip_v[1] = k[1] ^ 0x646f72616e646f6dull;
	sip_v[2] = k[0] ^ 0x6c7967656e657261ull;
	sip_v[3] = k[1] ^ 0x7465646279746573ull;
	keyed = 1;
}

/* The id of element ${e}: its first member. */
static inline uint32_t
elem_id(const void *e)
{
	uint32_t id;

	memcpy(&id, e, sizeof(id));
	return (id);
}

/* Home slot of ${id} in a table with mask ${mask}: SipHash-1-3 of the id's
 * four bytes, little-endian (one block, the last, with the length). */
static inline uint32_t
home(uint32_t id, uint32_t mask)
{
	uint64_t v[4] = { sip_v[0], sip_v[1], sip_v[2], sip_v[3] };
	uint64_t b = (uint64_t)4 << 56 | id;

	v[3] ^= b;
	sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	sipround(v);
	sipround(v);
	sipround(v);
	return ((uint32_t)(v[0] ^ v[1] ^ v[2] ^ v[3]) & mask);
}

/* The slot of ${map} (which has a table) that holds ${id}, or the empty
 * slot that ends its probe run if none does. */
static inline uint32_t
find(const struct idmap *map, uint32_t id)
{
	uint32_t i;

	for (i = home(id, map->mask); map->slots[i] != NULL &&
	    elem_id(map->slots[i]) != id; i = (i + 1) & map->mask)
		continue;
	return (i);
}

/* Initialise empty map ${map}. */
void
idmap_init(struct idmap *map)
{

	map->slots = NULL;
	map->mask = 0;
	map->count = 0;
}

/* Free ${map}'s table. */
void
idmap_destroy(struct idmap *map)
{

	free(map->slots);
	idmap_init(map);
}

/* The element with id ${id} in ${map}, or NULL. */
void *
idmap_get(const struct idmap *map, uint32_t id)
{

	if (map->slots == NULL)
		return (NULL);
	return (map->slots[find(map, id)]);
}

/* Slots a lookup of ${id} in ${map} examines. */
uint32_t
idmap_probes(const struct idmap *map, uint32_t id)
{

	if (map->slots == NULL)
		return (0);
	return (((find(map, id) - home(id, map->mask)) & map->mask) + 1);
}

/* Place ${elem} (its id not present) in the first free slot of its probe
 * sequence in ${map}. */
static void
place(struct idmap *map, void *elem)
{

	map->slots[find(map, elem_id(elem))] = elem;
}

/* Resize ${map} to ${cap} slots.  Returns 0 or -1. */
static int
resize(struct idmap *map, uint32_t cap)
{
	void **old = map->slots;
	uint32_t oldcap = old ? map->mask + 1 : 0, i;

	if (!keyed)
		key_init();
	if ((map->slots = calloc(cap, sizeof(void *))) == NULL) {
		map->slots = old;
		return (-1);
	}
	map->mask = cap - 1;
	for (i = 0; i < oldcap; i++)
		if (old[i] != NULL)
			place(map, old[i]);
	free(old);
	return (0);
}

/* Insert ${elem} into ${map}.  Returns 0 or -1. */
int
idmap_put(struct idmap *map, void *elem)
{

	if (map->slots == NULL) {
		if (resize(map, 16))
			return (-1);
	} else if ((uint64_t)(map->count + 1) * 2 > (uint64_t)map->mask + 1) {
		if (resize(map, (map->mask + 1) * 2))
			return (-1);
	}
	place(map, elem);
	map->count++;
	return (0);
}

/* Remove the element with id ${id} from ${map}, shifting its probe run back. */
void
idmap_del(struct idmap *map, uint32_t id)
{
	uint32_t i, j, h;

	if (map->slots == NULL)
		return;
	i = find(map, id);
	if (map->slots[i] == NULL)
		return;
	map->count--;

	/* Move later members of the run into the hole where they belong. */
	for (j = (i + 1) & map->mask; map->slots[j] != NULL;
	    j = (j + 1) & map->mask) {
		h = home(elem_id(map->slots[j]), map->mask);
		/* Entry j may fill hole i unless its home lies in (i, j]. */
		if (((j - h) & map->mask) >= ((j - i) & map->mask)) {
			map->slots[i] = map->slots[j];
			i = j;
		}
	}
	map->slots[i] = NULL;

	/* Give memory back once the map is mostly empty. */
	if (map->count == 0) {
		free(map->slots);
		idmap_init(map);
	}
}

/* Empty ${map}, then call ${fn}(element, ${arg}) for each former element. */
void
idmap_drain(struct idmap *map, void (*fn)(void *, void *), void *arg)
{
	struct idmap old = *map;
	uint32_t i;

	idmap_init(map);
	for (i = 0; old.slots != NULL && i <= old.mask; i++)
		if (old.slots[i] != NULL)
			fn(old.slots[i], arg);
	free(old.slots);
}
