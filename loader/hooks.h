/* SPDX-License-Identifier: MIT */
/*
 * hooks.h - the context every hook gets and the hook chain (hooks.c).
 */
#ifndef HOTMOD_HOOKS_H
#define HOTMOD_HOOKS_H

#include "common.h"
#include "hazard.h"
#include "names.h"

enum hm__phase { HM__PHASE_INIT, HM__PHASE_CALL, HM__PHASE_FINI };

/* The context every hook gets; lives on the stack of the call. */
struct hm_ctx {
	hm_loader *loader;
	void *request;
	struct hm__version *version; /* the module's; NULL in a global's init and fini */
	struct hm__version *global;  /* the global version in use, or NULL */
	enum hm_layer layer;    /* whose hook runs now ... */
	unsigned char hook;     /* ... and which (enum hm__hook): hm_running() */
	enum hm__phase phase;
	void *slot[2];
	hm_ctx *outer;
	struct hm__version *prev; /* init: the version being replaced, or NULL */
	/* The request's named locks, on its outermost call only (locks.c). */
	struct hm__lockset *locks;
};

/* Make ctx this thread's innermost call for the duration of a hook. */
static inline void hm__enter(hm_ctx *ctx, struct hm__thread *self)
{
	ctx->outer = self->current;
	self->current = ctx;
	self->depth++;
}
static inline void hm__leave(hm_ctx *ctx, struct hm__thread *self)
{
	self->current = ctx->outer;
	self->depth--;
}
/* The whole hook chain of a call (hotmod_module(3)); and the error for the
 * hook ctx runs (ctx->hook), which returned rc < 0. */
HM__HIDDEN int hm__chain(hm_ctx *ctx);
HM__HIDDEN int hm__hook_failed(const hm_ctx *ctx, int rc)
	__attribute__((cold));

/* The outermost call of a request returned rc: release its locks
 * (locks.c); the request's result (a failed lock wait that made a hook
 * fail, rather than HM_EHOOK). */
HM__HIDDEN int hm__locks_end(hm_ctx *root, int rc);

/* Run init or fini with ctx as this thread's innermost call. */
HM__HIDDEN int hm__run_init(hm_ctx *ctx, int (*init)(hm_ctx *));
HM__HIDDEN void hm__run_fini(hm_ctx *ctx, void (*fini)(hm_ctx *));

#endif /* HOTMOD_HOOKS_H */
