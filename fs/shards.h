/*
 * shards: sharded safetensors models (issue 11). A loader
 * (transformers' from_pretrained) reads model.safetensors.index.json,
 * then opens model-00001-of-0000N.safetensors, model-00002-..., one after
 * the other, and each open begins with a read of the shard's header. So
 * that no open waits on a header round trip:
 *  - the first open in a mount of a *.safetensors.index.json has the
 *    index fetched (like any read, through the scheduler), parsed on the
 *    worker pool, and the header chunks of the shards its weight_map
 *    names (at most SHARDS_AHEAD_MAX, in name order) queued at
 *    SCHED_READAHEAD;
 *  - an open of <prefix>-K-of-N.safetensors queues the header chunks of
 *    <prefix>-(K+1)-of-N.safetensors of the same folder.
 * An unreadable or bad index, or a name not in the folder, costs one
 * log line (INFO or DEBUG) and nothing else: the open never fails.
 *
 * Threads: shards_on_open runs on a FUSE worker and never waits on the
 * network: it wants chunks without waiting, holding a blob reference
 * only for the call (a shard) or until the index is parsed (the index).
 * The index is read and parsed on the worker pool's BULK lane. See
 * fs/shards.c for the locks.
 */
#ifndef HOLLOWFS_FS_SHARDS_H
#define HOLLOWFS_FS_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs;

/* Shards of one index whose headers are queued when it is opened; the
 * others are queued one ahead as the loader opens shards. Each holds an
 * open blob until its header chunk is in (fs/fill.h keeps as many). */
#define SHARDS_AHEAD_MAX 32

/* Index files larger than this are not read (real ones are < 1 MiB). */
#define SHARDS_INDEX_MAX_BYTES (16u << 20)

/* File idx of fs's manifest was just opened (fs/ops.c op_open, before
 * the reply). Borrows fs. */
void shards_on_open(struct fs *fs, uint64_t idx);

/*
 * The name of the shard after name ("model-00002-of-00003.safetensors"
 * gives "model-00003-of-00003.safetensors", the same zero padding) into
 * out (outlen bytes). False when name is not such a shard name, is the
 * last shard, or the result does not fit. For tests.
 */
bool shards_next_name(const char *name, char *out, size_t outlen);

#endif
