/* SPDX-License-Identifier: MIT */
/*
 * hooks.c - the hook chain, and the context every hook gets (hm_ctx_*).
 *
 * The chain for a module M in a directory with global module G (either may
 * lack any hook; hotmod_module(3) is the reference):
 *
 *	G.prepare, M.prepare, handler, then for M and then G, each only if its
 *	prepare ran and succeeded (or it has none): commit if nothing failed so
 *	far, else rollback; then release.
 *
 * A hook that fails undoes its own work: after a failed prepare the library
 * calls nothing more of that layer; after a failed commit, only its release
 * (never its rollback).  No lock is held here.
 */
#include "loader.h"
#include "hooks.h"

#include <string.h>
#include "fault.h" /* last: see fault.h */

void *hm_ctx_request(const hm_ctx *ctx) { return ctx->request; }
void *hm_ctx_app(const hm_ctx *ctx) { return ctx->loader->app; }
hm_loader *hm_ctx_loader(const hm_ctx *ctx) { return ctx->loader; }
enum hm_layer hm_ctx_layer(const hm_ctx *ctx) { return ctx->layer; }
hm_ctx *hm_ctx_outer(const hm_ctx *ctx) { return ctx->outer; }

static struct hm__version *hm__layer_version(const hm_ctx *ctx)
{
	return ctx->layer == HM_LAYER_GLOBAL ? ctx->global : ctx->version;
}

const char *hm_ctx_path(const hm_ctx *ctx)
{
	return (ctx->version ? ctx->version : ctx->global)->entry->key;
}

uint64_t hm_ctx_version(const hm_ctx *ctx)
{
	return (ctx->version ? ctx->version : ctx->global)->number;
}

uint64_t hm_ctx_global_version(const hm_ctx *ctx)
{
	return ctx->global ? ctx->global->number : 0;
}

void *hm_ctx_state(const hm_ctx *ctx)
{
	return hm__layer_version(ctx)->state;
}

void hm_ctx_set_state(hm_ctx *ctx, void *state)
{
	/* Only init may: later, other threads read state without a lock. */
	if (ctx->phase != HM__PHASE_INIT)
		return;
	/* An adoption stands (hotmod_module(3)): the new state may wrap the
	 * adopted one, which the replaced version's fini must then leave
	 * alone. */
	hm__layer_version(ctx)->state = state;
}

void *hm_ctx_prev_state(const hm_ctx *ctx)
{
	return ctx->phase == HM__PHASE_INIT && ctx->prev ? ctx->prev->state : NULL;
}

void *hm_ctx_adopt(hm_ctx *ctx)
{
	if (ctx->phase != HM__PHASE_INIT || !ctx->prev)
		return NULL; /* no version is replaced */
	/* Marked even when the state is NULL: the replaced version's fini
	 * then knows that a successor took over what it had. */
	ctx->prev->adopted = true;
	hm__layer_version(ctx)->state = ctx->prev->state;
	return ctx->prev->state;
}

int hm_ctx_adopted(const hm_ctx *ctx)
{
	return ctx->phase == HM__PHASE_FINI && hm__layer_version(ctx)->adopted;
}

void *hm_ctx_global_state(const hm_ctx *ctx)
{
	return ctx->global ? ctx->global->state : NULL;
}

void **hm_ctx_slot(hm_ctx *ctx, enum hm_layer layer)
{
	return &ctx->slot[layer == HM_LAYER_GLOBAL ? 0 : 1];
}

int hm_ctx_dispatch(hm_ctx *ctx, const char *path)
{
	return hm_dispatch(ctx->loader, path, ctx->request);
}

/*
 * init and fini run whatever the depth: a load nests at most once per
 * module (deadlock detection refuses a second), and fini must run.  Their
 * own nested dispatches are counted and limited like any other.
 */
int hm__run_init(hm_ctx *ctx, int (*init)(hm_ctx *))
{
	struct hm__thread *self = hm__self();
	int rc;

	if (!init)
		return 0;
	ctx->hook = HM__HOOK_INIT;
	hm__enter(ctx, self);
	rc = init(ctx);
	hm__leave(ctx, self);
	return rc;
}

void hm__run_fini(hm_ctx *ctx, void (*fini)(hm_ctx *))
{
	struct hm__thread *self = hm__self();

	if (!fini)
		return;
	ctx->hook = HM__HOOK_FINI;
	hm__enter(ctx, self);
	fini(ctx);
	hm__leave(ctx, self);
}

int hm__hook_failed(const hm_ctx *ctx, int rc)
{
	const struct hm__version *v = hm__layer_version(ctx);

	return hm__fail(HM_EHOOK, "%s version %llu: %s %s returned %d", v->entry->key,
		(unsigned long long)v->number, ctx->layer == HM_LAYER_GLOBAL ? "global" : "module",
		hm__hook_name(ctx->hook), rc);
}

int hm__chain(hm_ctx *ctx)
{
	struct hm__version *layers[2] = {ctx->global, ctx->version};
	struct hm__version *hv;
	bool entered[2] = {false, false};
	int status = 0, result = 0, rc;

	/* The handler: the module's, else its global's default one. */
	if (ctx->version->hooks.handle)
		hv = ctx->version;
	else if (ctx->global && ctx->global->hooks.handle)
		hv = ctx->global;
	else
		return hm__fail(HM_ENOHANDLER, "%s version %llu: no handle hook, and %s",
			ctx->version->entry->key, (unsigned long long)ctx->version->number,
			ctx->global ? "the global module has none either" : "no global module");

	for (int i = 0; i < 2 && status == 0; i++) {
		if (!layers[i])
			continue;
		ctx->layer = (enum hm_layer)i;
		ctx->hook = HM__HOOK_PREPARE;
		if (layers[i]->hooks.prepare && (rc = layers[i]->hooks.prepare(ctx)) < 0) {
			status = hm__hook_failed(ctx, rc);
			break;
		}
		entered[i] = true;
	}
	if (status == 0) {
		ctx->layer = hv == ctx->version ? HM_LAYER_MODULE : HM_LAYER_GLOBAL;
		ctx->hook = HM__HOOK_HANDLE;
		if ((rc = hv->hooks.handle(ctx)) < 0)
			status = hm__hook_failed(ctx, rc);
		else
			result = rc;
	}
	for (int i = 1; i >= 0; i--) {
		if (!entered[i])
			continue;
		const struct hm__hooks *h = &layers[i]->hooks;
		ctx->layer = (enum hm_layer)i;
		if (status == 0) {
			ctx->hook = HM__HOOK_COMMIT;
			if (h->commit && (rc = h->commit(ctx)) < 0)
				status = hm__hook_failed(ctx, rc);
		} else if (h->rollback) {
			ctx->hook = HM__HOOK_ROLLBACK;
			h->rollback(ctx);
		}
		ctx->hook = HM__HOOK_RELEASE;
		if (h->release)
			h->release(ctx);
	}
	return status < 0 ? status : result;
}
