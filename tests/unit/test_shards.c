/*
 * test_shards.c: the shard names of fs/shards.c (shards_next_name): the
 * next shard keeps the prefix and the zero padding, the last shard and
 * names of any other shape have no next one, and nothing is written past
 * the buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fs/shards.h"

static void assert_next(const char *name, const char *want)
{
	char out[256];

	assert_true(shards_next_name(name, out, sizeof(out)));
	assert_string_equal(out, want);
}

static void assert_none(const char *name)
{
	char out[256];

	assert_false(shards_next_name(name, out, sizeof(out)));
}

static void test_next_keeps_prefix_and_padding(void **state)
{
	(void)state;
	assert_next("model-00001-of-00003.safetensors",
		    "model-00002-of-00003.safetensors");
	assert_next("diffusion_pytorch_model-00001-of-00002.safetensors",
		    "diffusion_pytorch_model-00002-of-00002.safetensors");
	assert_next("model-00009-of-00010.safetensors",
		    "model-00010-of-00010.safetensors");
	assert_next("m-9-of-10.safetensors", "m-10-of-10.safetensors");
	assert_next("a-b-00001-of-00002.safetensors",
		    "a-b-00002-of-00002.safetensors");
	assert_next("-1-of-2.safetensors", "-2-of-2.safetensors");
}

static void test_no_next(void **state)
{
	(void)state;
	assert_none("model-00003-of-00003.safetensors"); /* the last */
	assert_none("model-00004-of-00003.safetensors");
	assert_none("model-00000-of-00003.safetensors");
	assert_none("model.safetensors");
	assert_none("model-00001-of-00003.bin");
	assert_none("model-00001-of-00003.safetensors.index.json");
	assert_none("00001-of-00003.safetensors"); /* no '-' before K */
	assert_none("model_00001-of-00003.safetensors");
	assert_none("model-00001-00003.safetensors");
	assert_none("model-00001-of-.safetensors");
	assert_none("model--of-00003.safetensors");
	assert_none("model-1-of-12345678901.safetensors"); /* 11 digits */
	assert_none(".safetensors");
	assert_none("");
}

static void test_small_buffer(void **state)
{
	char out[8];

	(void)state;
	memset(out, 'x', sizeof(out));
	assert_false(shards_next_name("model-00001-of-00003.safetensors", out,
				      sizeof(out)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_keeps_prefix_and_padding),
		cmocka_unit_test(test_no_next),
		cmocka_unit_test(test_small_buffer),
	};

	return cmocka_run_group_tests_name("shards", tests, NULL, NULL);
}
