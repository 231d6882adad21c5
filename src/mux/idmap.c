/*
 * idmap: see idmap.h.  Linear probing, kept at most half full.
 */
#include <stdlib.h>
#include <string.h>

#include "idmap.h"

/* The id of element ${e}: its first member. */
static inline uint32_t
elem_id(const void *e)
{
	uint32_t id;

	memcpy(&id, e, sizeof(id));
	return (id);
}

/* Home slot of ${id} in a table with mask ${mask}: ids come in steps of
 * two, so mix every bit into the low ones before masking. */
static inline uint32_t
home(uint32_t id, uint32_t mask)
{

	id ^= id >> 16;
	id *= 0x45d9f3bu;
	id ^= id >> 16;
	return (id & mask);
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
	uint32_t i;

	if (map->slots == NULL)
		return (NULL);
	for (i = home(id, map->mask); map->slots[i] != NULL;
	    i = (i + 1) & map->mask) {
		if (elem_id(map->slots[i]) == id)
			return (map->slots[i]);
	}
	return (NULL);
}

/* Place ${elem} in the first free slot of its probe sequence in ${map}. */
static void
place(struct idmap *map, void *elem)
{
	uint32_t i;

	for (i = home(elem_id(elem), map->mask); map->slots[i] != NULL;
	    i = (i + 1) & map->mask)
		continue;
	map->slots[i] = elem;
}

/* Resize ${map} to ${cap} slots.  Returns 0 or -1. */
static int
resize(struct idmap *map, uint32_t cap)
{
	void **old = map->slots;
	uint32_t oldcap = old ? map->mask + 1 : 0, i;

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
	for (i = home(id, map->mask); map->slots[i] != NULL;
	    i = (i + 1) & map->mask)
		if (elem_id(map->slots[i]) == id)
			break;
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
