/*
 * frame: the yamux version 0 frame header, 12 bytes big-endian.
 */
#ifndef MXD_FRAME_H
#define MXD_FRAME_H

#include <stdint.h>

#define FRAME_HDR_LEN	12
#define FRAME_VERSION	0

enum frame_type {
	FRAME_DATA = 0,
	FRAME_WINDOW_UPDATE = 1,
	FRAME_PING = 2,
	FRAME_GO_AWAY = 3,
	FRAME_EXT = 4		/* mxd's extension: only to a peer that
				 * offered it (docs/PROTOCOL.md section 11) */
};

#define FRAME_SYN	0x1
#define FRAME_ACK	0x2
#define FRAME_FIN	0x4
#define FRAME_RST	0x8
/* Window Update flags of the mxd extension (never sent to a plain peer):
 * the delta grows the window and acknowledges nothing; the peer has
 * received every byte of the stream and its FIN. */
#define FRAME_GROW	0x10
#define FRAME_FIN_ACK	0x20

struct frame_hdr {
	uint8_t		version;
	uint8_t		type;
	uint16_t	flags;
	uint32_t	stream_id;
	uint32_t	length;	/* payload length, window delta, ping
				 * opaque value or go away code */
};

/* Write ${h} as 12 bytes into ${buf}. */
static inline void
frame_encode(uint8_t buf[FRAME_HDR_LEN], const struct frame_hdr *h)
{

	buf[0] = h->version;
	buf[1] = h->type;
	buf[2] = (uint8_t)(h->flags >> 8);
	buf[3] = (uint8_t)h->flags;
	buf[4] = (uint8_t)(h->stream_id >> 24);
	buf[5] = (uint8_t)(h->stream_id >> 16);
	buf[6] = (uint8_t)(h->stream_id >> 8);
	buf[7] = (uint8_t)h->stream_id;
	buf[8] = (uint8_t)(h->length >> 24);
	buf[9] = (uint8_t)(h->length >> 16);
	buf[10] = (uint8_t)(h->length >> 8);
	buf[11] = (uint8_t)h->length;
}

/* Read 12 bytes from ${buf} into ${h}. */
static inline void
frame_decode(const uint8_t buf[FRAME_HDR_LEN], struct frame_hdr *h)
{

	h->version = buf[0];
	h->type = buf[1];
	h->flags = (uint16_t)((buf[2] << 8) | buf[3]);
	h->stream_id = ((uint32_t)buf[4] << 24) | ((uint32_t)buf[5] << 16) |
	    ((uint32_t)buf[6] << 8) | buf[7];
	h->length = ((uint32_t)buf[8] << 24) | ((uint32_t)buf[9] << 16) |
	    ((uint32_t)buf[10] << 8) | buf[11];
}

#endif
