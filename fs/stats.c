/* stats.c: the stats xattr's JSON (see fs/stats.h). */
#include "fs/stats.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define STATS_FORMAT 1

static const char *const prio_names[3] = { "demand", "readahead",
					   "background" };

/* The number fields, by name, for both directions. */
#define NUM_FIELDS(X)                           \
	X("files", files)                       \
	X("bytes", bytes)                       \
	X("bytes_fetched", bytes_fetched)       \
	X("bytes_served", bytes_served)         \
	X("bytes_from_cache", bytes_from_cache) \
	X("reads", reads)                       \
	X("read_errors", read_errors)           \
	X("requests", requests)                 \
	X("retries", retries)                   \
	X("errors", errors)                     \
	X("inflight", inflight)                 \
	X("open_blobs", open_blobs)

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* json_integer is signed: counters stay far below 2^63. */
static int set_num(json_t *o, const char *key, uint64_t v)
{
	return json_object_set_new(o, key, json_integer((json_int_t)v));
}

int fs_stats_format(const struct fs_stats *st, char **out)
{
	json_t *o = json_object(), *conn = json_object(), *q = json_object();
	int bad = !o || !conn || !q, i;

	*out = NULL;
	bad |= set_num(o, "format", STATS_FORMAT);
	bad |= json_object_set_new(o, "source", str_or_null(st->source));
	bad |= json_object_set_new(o, "version", str_or_null(st->version));
	bad |= json_object_set_new(o, "cache", str_or_null(st->cache));
#define SET(name, field) bad |= set_num(o, name, st->field);
	NUM_FIELDS(SET)
#undef SET
	bad |= set_num(conn, "in_use", st->conn_in_use);
	bad |= set_num(conn, "max", st->conn_max);
	for (i = 0; i < 3; i++)
		bad |= set_num(q, prio_names[i], st->queued[i]);
	if (!bad) {
		bad |= json_object_set(o, "connections", conn);
		bad |= json_object_set(o, "queued", q);
	}
	if (!bad)
		*out = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(conn);
	json_decref(q);
	json_decref(o);
	return *out ? 0 : -ENOMEM;
}

/* A number field of o: 0 when absent, -EBADMSG when not a number >= 0. */
static int get_num(const json_t *o, const char *key, uint64_t *v)
{
	const json_t *j = json_object_get(o, key);

	*v = 0;
	if (!j)
		return 0;
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -EBADMSG;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int get_str(const json_t *o, const char *key, char **v)
{
	const json_t *j = json_object_get(o, key);

	*v = NULL;
	if (!j || json_is_null(j))
		return 0;
	if (!json_is_string(j))
		return -EBADMSG;
	*v = strdup(json_string_value(j));
	return *v ? 0 : -ENOMEM;
}

static int get_sub(const json_t *o, const char *key, const json_t **sub)
{
	*sub = json_object_get(o, key);
	if (*sub && !json_is_object(*sub))
		return -EBADMSG;
	return 0;
}

int fs_stats_parse(const char *text, size_t len, struct fs_stats *st)
{
	const json_t *conn, *q;
	uint64_t format;
	json_t *o;
	int err, i;

	memset(st, 0, sizeof(*st));
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!o)
		return -EBADMSG;
	err = json_is_object(o) ? 0 : -EBADMSG;
	if (!err)
		err = get_num(o, "format", &format);
	if (!err && format != STATS_FORMAT)
		err = -EBADMSG;
	if (!err)
		err = get_str(o, "source", &st->source);
	if (!err)
		err = get_str(o, "version", &st->version);
	if (!err)
		err = get_str(o, "cache", &st->cache);
#define GET(name, field) \
	if (!err)        \
		err = get_num(o, name, &st->field);
	NUM_FIELDS(GET)
#undef GET
	if (!err)
		err = get_sub(o, "connections", &conn);
	if (!err && conn)
		err = get_num(conn, "in_use", &st->conn_in_use);
	if (!err && conn)
		err = get_num(conn, "max", &st->conn_max);
	if (!err)
		err = get_sub(o, "queued", &q);
	for (i = 0; i < 3 && !err && q; i++)
		err = get_num(q, prio_names[i], &st->queued[i]);
	json_decref(o);
	if (err)
		fs_stats_release(st);
	return err;
}

void fs_stats_release(struct fs_stats *st)
{
	free(st->source);
	free(st->version);
	free(st->cache);
	st->source = st->version = st->cache = NULL;
}
