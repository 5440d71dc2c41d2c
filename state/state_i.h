/*
 * state_i.h: helpers shared inside state/ (not a public header).
 * On-disk formats use these explicit little-endian encoders, never a
 * struct or a native integer written as it is (STYLE.md section 3).
 */
#ifndef HOLLOWFS_STATE_STATE_I_H
#define HOLLOWFS_STATE_STATE_I_H

#include <stdint.h>

static inline void put_le32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	int i;

	for (i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
