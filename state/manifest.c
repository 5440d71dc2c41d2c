/*
 * manifest.c: the tree of one snapshot, and its JSON form.
 *
 * While building, a hash table from full path to entry index finds
 * parents in O(1) (listings of a folder with 100,000 files are normal);
 * manifest_finish() then gives every folder its children sorted by name.
 * The table stays for manifest_find().
 *
 * No locks: one thread builds; after finish the manifest is read-only.
 */
#include "state/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NAME_LEN_MAX 255

/* What manifest_new() allocates; callers see only ->pub. */
struct manifest_impl {
	struct manifest pub; /* first: the public pointer is ours */
	uint64_t *table; /* entry index + 1, 0 = free slot */
	size_t table_cap; /* a power of two, at least 2 * pub.n */
	uint64_t *child_pool; /* every folder's children, one array */
};

static struct manifest_impl *impl_of(const struct manifest *m)
{
	return (struct manifest_impl *)m;
}

static size_t table_slot(const struct manifest_impl *mi, const char *path,
			 size_t len)
{
	return (size_t)XXH3_64bits(path, len) & (mi->table_cap - 1);
}

/* Index of the entry at path[0..len), or SIZE_MAX. */
static size_t table_find(const struct manifest_impl *mi, const char *path,
			 size_t len)
{
	size_t i;

	for (i = table_slot(mi, path, len); mi->table[i];
	     i = (i + 1) & (mi->table_cap - 1)) {
		const char *p = mi->pub.entries[mi->table[i] - 1].path;

		if (!strncmp(p, path, len) && !p[len])
			return (size_t)(mi->table[i] - 1);
	}
	return SIZE_MAX;
}

/* The caller made room (table_reserve). */
static void table_insert(struct manifest_impl *mi, size_t idx)
{
	const char *path = mi->pub.entries[idx].path;
	size_t i;

	for (i = table_slot(mi, path, strlen(path)); mi->table[i];
	     i = (i + 1) & (mi->table_cap - 1))
		;
	mi->table[i] = idx + 1;
}

/* Room for n entries at a load of at most one half. */
static int table_reserve(struct manifest_impl *mi, size_t n)
{
	uint64_t *old = mi->table;
	size_t old_cap = mi->table_cap, cap = old_cap ? old_cap : 16, i;

	if (n > SIZE_MAX / 4)
		return -ENOMEM;
	while (cap < 2 * n)
		cap *= 2;
	if (cap == old_cap)
		return 0;
	mi->table = calloc(cap, sizeof(*mi->table));
	if (!mi->table) {
		mi->table = old;
		return -ENOMEM;
	}
	mi->table_cap = cap;
	for (i = 0; i < old_cap; i++)
		if (old[i])
			table_insert(mi, (size_t)(old[i] - 1));
	free(old);
	return 0;
}

static int entries_reserve(struct manifest *m, size_t n)
{
	struct mentry *e;
	size_t alloc = m->alloc ? m->alloc : 16;

	if (n <= m->alloc)
		return 0;
	while (alloc < n) {
		if (alloc > SIZE_MAX / 2 / sizeof(*e))
			return -ENOMEM;
		alloc *= 2;
	}
	e = realloc(m->entries, alloc * sizeof(*e));
	if (!e)
		return -ENOMEM;
	m->entries = e;
	m->alloc = alloc;
	return 0;
}

static void mentry_release(struct mentry *e)
{
	free(e->name);
	free(e->path);
	free(e->content_id);
	free(e->hash_kind);
	free(e->url);
}

int manifest_new(struct manifest **out)
{
	struct manifest_impl *mi;
	struct mentry *root;
	int err = -ENOMEM;

	*out = NULL;
	mi = calloc(1, sizeof(*mi));
	if (!mi)
		return -ENOMEM;
	if (entries_reserve(&mi->pub, 1) || table_reserve(mi, 1))
		goto out_free;
	root = &mi->pub.entries[0];
	memset(root, 0, sizeof(*root));
	root->type = MENTRY_DIR;
	root->name = strdup("");
	root->path = strdup("");
	if (!root->name || !root->path) {
		mentry_release(root);
		goto out_free;
	}
	mi->pub.n = 1;
	table_insert(mi, 0);
	*out = &mi->pub;
	return 0;

out_free:
	free(mi->table);
	free(mi->pub.entries);
	free(mi);
	return err;
}

void manifest_free(struct manifest *m)
{
	struct manifest_impl *mi;
	size_t i;

	if (!m)
		return;
	mi = impl_of(m);
	for (i = 0; i < m->n; i++)
		mentry_release(&m->entries[i]);
	free(m->entries);
	free(m->source);
	free(m->version);
	free(mi->child_pool);
	free(mi->table);
	free(mi);
}

bool manifest_name_ok(const char *name)
{
	return name && *name && strcmp(name, ".") && strcmp(name, "..") &&
	       !strchr(name, '/') &&
	       strnlen(name, NAME_LEN_MAX + 1) <= NAME_LEN_MAX;
}

static bool component_ok(const char *p, size_t len)
{
	if (!len || len > NAME_LEN_MAX || memchr(p, '/', len))
		return false;
	return !(len == 1 && p[0] == '.') &&
	       !(len == 2 && p[0] == '.' && p[1] == '.');
}

/* Checks every component; fills ends[] (offset after each) and *k. */
static int split_path(const char *path, size_t len, size_t *ends, size_t *k)
{
	size_t start = 0, n = 0;

	while (start <= len) {
		const char *slash = memchr(path + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - path) : len;

		if (!component_ok(path + start, end - start))
			return -EINVAL;
		ends[n++] = end;
		start = end + 1;
	}
	*k = n;
	return 0;
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

int manifest_add(struct manifest *m, const char *path, enum mentry_type type,
		 uint64_t size, int64_t mtime, const char *content_id,
		 const char *hash_kind, const char *url)
{
	struct manifest_impl *mi = impl_of(m);
	struct mentry *fresh = NULL;
	size_t *ends = NULL;
	size_t len, k, i, first_new, parent = 0, nfresh;
	bool failed = false;
	int err;

	if (m->finished)
		return -EBUSY;
	if (!path || (type != MENTRY_DIR && type != MENTRY_FILE))
		return -EINVAL;
	len = strlen(path);
	if (!len || len >= PATH_MAX)
		return -EINVAL;
	if (type == MENTRY_FILE && size > INT64_MAX)
		return -EOVERFLOW; /* st_size is an off_t */
	if (type == MENTRY_DIR)
		size = 0;
	/* At most one component per two bytes, plus one. */
	ends = malloc((len / 2 + 1) * sizeof(*ends));
	if (!ends)
		return -ENOMEM;
	err = split_path(path, len, ends, &k);
	if (err)
		goto out_free;

	/* Find the deepest existing ancestor; decide before changing. */
	for (first_new = 0; first_new < k; first_new++) {
		size_t idx = table_find(mi, path, ends[first_new]);
		struct mentry *e;

		if (idx == SIZE_MAX)
			break;
		e = &m->entries[idx];
		if (first_new == k - 1) {
			if (e->type == MENTRY_DIR && type == MENTRY_DIR) {
				e->mtime = mtime;
				err = 0;
			} else {
				err = -EEXIST;
			}
			goto out_free;
		}
		if (e->type != MENTRY_DIR) {
			err = -ENOTDIR;
			goto out_free;
		}
		parent = idx;
	}

	/* Allocate everything, then link: ENOMEM leaves no trace. */
	nfresh = k - first_new;
	err = entries_reserve(m, m->n + nfresh);
	if (!err)
		err = table_reserve(mi, m->n + nfresh);
	if (err)
		goto out_free;
	fresh = calloc(nfresh, sizeof(*fresh));
	if (!fresh) {
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < nfresh; i++) {
		size_t c = first_new + i;
		size_t start = c ? ends[c - 1] + 1 : 0;
		bool last = i == nfresh - 1;

		fresh[i].name = strndup(path + start, ends[c] - start);
		fresh[i].path = strndup(path, ends[c]);
		failed |= !fresh[i].name || !fresh[i].path;
		fresh[i].type = last ? type : MENTRY_DIR;
		fresh[i].size = last ? size : 0;
		fresh[i].mtime = mtime; /* made-up folders: the child's */
		if (last) {
			fresh[i].content_id = dup_or_null(content_id, &failed);
			fresh[i].hash_kind = dup_or_null(hash_kind, &failed);
			fresh[i].url = dup_or_null(url, &failed);
		}
	}
	if (failed) {
		for (i = 0; i < nfresh; i++)
			mentry_release(&fresh[i]);
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < nfresh; i++) {
		fresh[i].parent = parent;
		parent = m->n;
		m->entries[m->n] = fresh[i];
		table_insert(mi, m->n);
		m->n++;
	}
	err = 0;
out_free:
	free(fresh);
	free(ends);
	return err;
}

static int child_cmp(const void *a, const void *b, void *arg)
{
	const struct mentry *e = arg;
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return strcmp(e[x].name, e[y].name);
}

/* A folder listed without an mtime (0) takes the newest one below it.
 * Parents always come before their children, so one backward pass
 * carries times up the tree. */
static void manifest_derive_dir_mtimes(struct manifest *m)
{
	bool *derive = calloc(m->n ? m->n : 1, sizeof(*derive));
	size_t i;

	if (!derive)
		return; /* cosmetic: keep the zeros */
	for (i = 0; i < m->n; i++)
		derive[i] = m->entries[i].type == MENTRY_DIR &&
			    m->entries[i].mtime == 0;
	for (i = m->n; i-- > 1;) {
		struct mentry *e = &m->entries[i];

		if (derive[e->parent] && e->mtime > m->entries[e->parent].mtime)
			m->entries[e->parent].mtime = e->mtime;
	}
	free(derive);
}

int manifest_finish(struct manifest *m)
{
	struct manifest_impl *mi = impl_of(m);
	uint64_t *pool;
	size_t i, off;

	if (m->finished)
		return 0;
	pool = malloc((m->n > 1 ? m->n - 1 : 1) * sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	for (i = 0; i < m->n; i++)
		m->entries[i].nchildren = 0;
	for (i = 1; i < m->n; i++)
		m->entries[m->entries[i].parent].nchildren++;
	for (i = 0, off = 0; i < m->n; i++) {
		m->entries[i].children = m->entries[i].nchildren ? pool + off :
								   NULL;
		off += m->entries[i].nchildren;
		m->entries[i].nchildren = 0;
	}
	for (i = 1; i < m->n; i++) {
		struct mentry *p = &m->entries[m->entries[i].parent];

		p->children[p->nchildren++] = i;
	}
	manifest_derive_dir_mtimes(m);
	for (i = 0; i < m->n; i++)
		if (m->entries[i].nchildren > 1)
			qsort_r(m->entries[i].children, m->entries[i].nchildren,
				sizeof(*pool), child_cmp, m->entries);
	mi->child_pool = pool;
	m->finished = true;
	return 0;
}

int manifest_lookup(const struct manifest *m, uint64_t parent, const char *name,
		    uint64_t *idx)
{
	const struct mentry *p;
	size_t lo, hi, i;

	if (parent >= m->n)
		return -ENOENT;
	p = &m->entries[parent];
	if (p->type != MENTRY_DIR)
		return -ENOTDIR;
	if (!name)
		return -ENOENT;
	if (!m->finished) {
		for (i = 1; i < m->n; i++) {
			if (m->entries[i].parent == parent &&
			    !strcmp(m->entries[i].name, name)) {
				*idx = i;
				return 0;
			}
		}
		return -ENOENT;
	}
	lo = 0;
	hi = p->nchildren;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, m->entries[p->children[mid]].name);

		if (!c) {
			*idx = p->children[mid];
			return 0;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -ENOENT;
}

int manifest_find(const struct manifest *m, const char *path, uint64_t *idx)
{
	size_t i;

	if (!path)
		return -ENOENT;
	i = table_find(impl_of(m), path, strlen(path));
	if (i == SIZE_MAX)
		return -ENOENT;
	*idx = i;
	return 0;
}

uint64_t manifest_total_bytes(const struct manifest *m)
{
	uint64_t total = 0;
	size_t i;

	for (i = 0; i < m->n; i++) {
		if (m->entries[i].type != MENTRY_FILE)
			continue;
		if (total > UINT64_MAX - m->entries[i].size)
			return UINT64_MAX;
		total += m->entries[i].size;
	}
	return total;
}

size_t manifest_file_count(const struct manifest *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->n; i++)
		n += m->entries[i].type == MENTRY_FILE;
	return n;
}

/* Sets obj[key] to the string s if s is not NULL. */
static int json_set_str(json_t *obj, const char *key, const char *s)
{
	json_t *v;

	if (!s)
		return 0;
	v = json_string(s);
	if (!v)
		return -EILSEQ; /* not UTF-8 (or out of memory) */
	if (json_object_set_new(obj, key, v))
		return -ENOMEM;
	return 0;
}

static int json_set_int(json_t *obj, const char *key, json_int_t i)
{
	if (json_object_set_new(obj, key, json_integer(i)))
		return -ENOMEM;
	return 0;
}

/* The JSON object of one entry (a new reference), or NULL with *err. */
static json_t *entry_to_json(const struct mentry *e, int *err)
{
	json_t *o = json_object();

	*err = o ? 0 : -ENOMEM;
	if (!*err)
		*err = json_set_str(o, "path", e->path);
	if (!*err)
		*err = json_set_str(o, "type",
				    e->type == MENTRY_DIR ? "dir" : "file");
	if (!*err)
		*err = json_set_int(o, "size", (json_int_t)e->size);
	if (!*err)
		*err = json_set_int(o, "mtime", (json_int_t)e->mtime);
	if (!*err)
		*err = json_set_str(o, "id", e->content_id);
	if (!*err)
		*err = json_set_str(o, "hash", e->hash_kind);
	if (!*err)
		*err = json_set_str(o, "url", e->url);
	if (*err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A growing output string. */
struct jbuf {
	char *p;
	size_t len, cap;
};

static int jbuf_reserve(struct jbuf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *p;

	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	if (cap == b->cap)
		return 0;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int jbuf_put(struct jbuf *b, const char *s, size_t len)
{
	int err = jbuf_reserve(b, len + 1);

	if (err)
		return err;
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

/* Appends the compact dump of v (the caller's reference is dropped). */
static int jbuf_dump(struct jbuf *b, json_t *v)
{
	const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
	size_t need = json_dumpb(v, NULL, 0, flags);
	int err = need ? jbuf_reserve(b, need + 1) : -ENOMEM;

	if (!err && json_dumpb(v, b->p + b->len, need, flags) != need)
		err = -ENOMEM;
	if (!err) {
		b->len += need;
		b->p[b->len] = '\0';
	}
	json_decref(v);
	return err;
}

/*
 * Streams the JSON form one entry at a time, so a listing of 100,000
 * files never exists as a whole jansson tree (about 800 bytes an entry):
 * the header object is dumped with its closing '}' cut, then
 * ,"entries":[ and each entry's object. The bytes are those json_dumps
 * of the whole tree would give (JSON_COMPACT | JSON_PRESERVE_ORDER).
 */
int manifest_to_json(const struct manifest *m, char **out)
{
	struct jbuf b = { 0 };
	json_t *head, *o;
	size_t i;
	int err;

	*out = NULL;
	head = json_object();
	err = head ? json_set_int(head, "format", 1) : -ENOMEM;
	if (!err)
		err = json_set_str(head, "source", m->source);
	if (!err)
		err = json_set_str(head, "version", m->version);
	if (err) {
		json_decref(head);
		return err;
	}
	err = jbuf_dump(&b, head);
	if (!err) {
		b.len--; /* the header's closing '}' */
		err = jbuf_put(&b, ",\"entries\":[", 12);
	}
	for (i = 1; !err && i < m->n; i++) { /* the root is implied */
		o = entry_to_json(&m->entries[i], &err);
		if (!err && i > 1)
			err = jbuf_put(&b, ",", 1);
		if (!err)
			err = jbuf_dump(&b, o);
		else
			json_decref(o);
	}
	if (!err)
		err = jbuf_put(&b, "]}", 2);
	if (err) {
		free(b.p);
		return err;
	}
	*out = b.p;
	return 0;
}

/* obj[key] as a string: absent or null gives NULL; else -EBADMSG. */
static int json_get_str(const json_t *obj, const char *key, bool required,
			const char **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return required ? -EBADMSG : 0;
	if (!json_is_string(v))
		return -EBADMSG;
	/* Refuse an embedded NUL even if the parser let one through. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return -EBADMSG;
	*out = json_string_value(v);
	return 0;
}

static int json_get_int(const json_t *obj, const char *key, bool required,
			json_int_t *out)
{
	const json_t *v = json_object_get(obj, key);

	*out = 0;
	if (!v)
		return required ? -EBADMSG : 0;
	if (!json_is_integer(v))
		return -EBADMSG;
	*out = json_integer_value(v);
	return 0;
}

static int entry_from_json(struct manifest *m, const json_t *o)
{
	const char *path, *type, *id, *hash, *url;
	json_int_t size, mtime;
	enum mentry_type t;
	int err;

	if (!json_is_object(o))
		return -EBADMSG;
	err = json_get_str(o, "path", true, &path);
	if (!err)
		err = json_get_str(o, "type", true, &type);
	if (err)
		return err;
	if (!strcmp(type, "file"))
		t = MENTRY_FILE;
	else if (!strcmp(type, "dir"))
		t = MENTRY_DIR;
	else
		return -EBADMSG;
	err = json_get_int(o, "size", t == MENTRY_FILE, &size);
	if (!err)
		err = json_get_int(o, "mtime", false, &mtime);
	if (!err)
		err = json_get_str(o, "id", false, &id);
	if (!err)
		err = json_get_str(o, "hash", false, &hash);
	if (!err)
		err = json_get_str(o, "url", false, &url);
	if (err)
		return err;
	if (size < 0)
		return -EBADMSG;
	err = manifest_add(m, path, t, (uint64_t)size, (int64_t)mtime, id, hash,
			   url);
	return err == -ENOMEM ? err : err ? -EBADMSG : 0;
}

/* The index of the first byte of text[pos, len) that is not JSON white
 * space (len if none). */
static size_t json_skip_ws(const char *text, size_t len, size_t pos)
{
	while (pos < len && (text[pos] == ' ' || text[pos] == '\t' ||
			     text[pos] == '\n' || text[pos] == '\r'))
		pos++;
	return pos;
}

/* One JSON value decoded from text[*pos, len), *pos moved past it; NULL
 * when malformed. */
static json_t *json_load_one(const char *text, size_t len, size_t *pos)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK |
			     JSON_DECODE_ANY;
	json_error_t jerr;
	json_t *v = json_loadb(text + *pos, len - *pos, flags, &jerr);

	if (v && jerr.position <= 0) {
		json_decref(v);
		return NULL;
	}
	if (v)
		*pos += (size_t)jerr.position;
	return v;
}

/* The "entries" array at text[*pos], added to m one element at a time;
 * *pos moved past it. */
static int entries_from_json(struct manifest *m, const char *text, size_t len,
			     size_t *pos)
{
	size_t p = *pos;
	json_t *item;
	int err;

	if (p >= len || text[p] != '[')
		return -EBADMSG;
	p = json_skip_ws(text, len, p + 1);
	if (p < len && text[p] == ']') {
		*pos = p + 1;
		return 0;
	}
	for (;;) {
		item = json_load_one(text, len, &p);
		if (!item)
			return -EBADMSG;
		err = entry_from_json(m, item);
		json_decref(item);
		if (err)
			return err;
		p = json_skip_ws(text, len, p);
		if (p < len && text[p] == ',') {
			p = json_skip_ws(text, len, p + 1);
			continue;
		}
		if (p < len && text[p] == ']') {
			*pos = p + 1;
			return 0;
		}
		return -EBADMSG;
	}
}

/* The members of the top-level object: "entries" streamed into m, the
 * others kept in head (a duplicated key is -EBADMSG). */
static int members_from_json(struct manifest *m, json_t *head, const char *text,
			     size_t len)
{
	size_t p = json_skip_ws(text, len, 0);
	json_t *key, *v;
	int err = 0;

	if (p >= len || text[p] != '{')
		return -EBADMSG;
	p = json_skip_ws(text, len, p + 1);
	if (p < len && text[p] == '}')
		return json_skip_ws(text, len, p + 1) == len ? 0 : -EBADMSG;
	for (;;) {
		if (p >= len || text[p] != '"')
			return -EBADMSG;
		key = json_load_one(text, len, &p);
		if (!key || !json_is_string(key) ||
		    json_object_get(head, json_string_value(key))) {
			json_decref(key);
			return -EBADMSG;
		}
		p = json_skip_ws(text, len, p);
		if (p < len && text[p] == ':')
			p = json_skip_ws(text, len, p + 1);
		else
			err = -EBADMSG;
		v = NULL;
		if (!err && !strcmp(json_string_value(key), "entries")) {
			err = entries_from_json(m, text, len, &p);
			v = err ? NULL : json_true();
		} else if (!err) {
			v = json_load_one(text, len, &p);
			err = v ? 0 : -EBADMSG;
		}
		if (!err &&
		    json_object_set_new(head, json_string_value(key), v))
			err = -ENOMEM;
		json_decref(key);
		if (err)
			return err;
		p = json_skip_ws(text, len, p);
		if (p < len && text[p] == ',') {
			p = json_skip_ws(text, len, p + 1);
			continue;
		}
		if (p < len && text[p] == '}')
			break;
		return -EBADMSG;
	}
	return json_skip_ws(text, len, p + 1) == len ? 0 : -EBADMSG;
}

/*
 * Streamed like manifest_to_json: the top-level object is walked here and
 * each element of "entries" decoded and added by itself, so a snapshot of
 * 100,000 files never exists as a whole jansson tree. Malformed JSON
 * anywhere, trailing bytes or a duplicated key is -EBADMSG, as for
 * json_loadb(JSON_REJECT_DUPLICATES) of the whole.
 */
int manifest_from_json(const char *text, size_t len, struct manifest **out)
{
	const char *source, *version;
	struct manifest *m = NULL;
	json_int_t format;
	json_t *head;
	int err;

	*out = NULL;
	head = json_object();
	err = head ? manifest_new(&m) : -ENOMEM;
	if (!err)
		err = members_from_json(m, head, text, len);
	if (!err &&
	    (json_get_int(head, "format", true, &format) || format != 1 ||
	     json_get_str(head, "source", false, &source) ||
	     json_get_str(head, "version", false, &version) ||
	     !json_object_get(head, "entries")))
		err = -EBADMSG;
	if (!err)
		err = manifest_finish(m);
	if (!err && source) {
		m->source = strdup(source);
		err = m->source ? 0 : -ENOMEM;
	}
	if (!err && version) {
		m->version = strdup(version);
		err = m->version ? 0 : -ENOMEM;
	}
	json_decref(head);
	if (err) {
		manifest_free(m);
		return err;
	}
	*out = m;
	return 0;
}
