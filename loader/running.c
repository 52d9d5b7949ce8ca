/* SPDX-License-Identifier: MIT */
/*
 * running.c - what a crash handler may ask (hm_running(3)): which hook of
 * which module version this thread is running, and the SHA-256 of the
 * bytes that version was loaded from.
 *
 * Both are async-signal-safe: no lock, no allocation.  hm_running() reads
 * this thread's innermost call (hm__tls.current, set around every hook);
 * hm_module_digest() hashes the version's sealed memfd (its bytes cannot
 * change, and it stays open while the version is loaded) with pread(2)
 * and nettle's SHA-256, and keeps the result: the first caller to claim
 * the version's digest_state stores it, the others compute their own.
 */
#include "loader.h"
#include "hooks.h"
#include "version.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

_Static_assert(HM_DIGEST_SIZE == SHA256_DIGEST_SIZE, "HM_DIGEST_SIZE is SHA-256's");

int hm_running(struct hm_running *out)
{
	const hm_ctx *ctx = hm__self()->current;

	if (!ctx || !out)
		return 0;
	out->module = ctx->layer == HM_LAYER_GLOBAL ? ctx->global : ctx->version;
	out->hook = hm__hook_name(ctx->hook);
	return out->module != NULL;
}

int hm__digest_fd(int fd, off_t size, unsigned char digest[HM_DIGEST_SIZE])
{
	unsigned char buf[4096]; /* small: this may run on a signal stack */
	struct sha256_ctx sha;
	off_t at = 0;

	sha256_init(&sha);
	while (at < size) {
		size_t want = (size_t)(size - at) < sizeof buf ? (size_t)(size - at) : sizeof buf;
		ssize_t n = pread(fd, buf, want, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO; /* a sealed file shorter than it was */
			return HM_ESYS;
		}
		sha256_update(&sha, (size_t)n, buf);
		at += n;
	}
	sha256_digest(&sha, HM_DIGEST_SIZE, digest);
	return 0;
}

int hm_module_digest(const hm_module *mod, unsigned char digest[HM_DIGEST_SIZE])
{
	struct hm__version *v = (struct hm__version *)mod;
	unsigned char free_ = 0;

	if (!v || !digest) {
		errno = EINVAL;
		return HM_EINVAL;
	}
	/* acquire: pairs with the release below */
	if (atomic_load_explicit(&v->digest_state, memory_order_acquire) == 2) {
		memcpy(digest, v->digest, HM_DIGEST_SIZE);
		return 0;
	}
	if (hm__digest_fd(v->memfd, (off_t)v->bytes, digest) < 0)
		return HM_ESYS;
	if (atomic_compare_exchange_strong_explicit(&v->digest_state, &free_, 1,
		    memory_order_relaxed, memory_order_relaxed)) {
		memcpy(v->digest, digest, HM_DIGEST_SIZE);
		atomic_store_explicit(&v->digest_state, 2, memory_order_release);
	}
	return 0;
}
