/* SPDX-License-Identifier: MIT */
/*
 * hotmod_module.h - the API for authors of modules that libhotmod loads.
 *
 * A module is a shared object that defines one descriptor with HM_MODULE():
 *
 *	#include <hotmod_module.h>
 *	#include <stdio.h>
 *
 *	static int handle(hm_ctx *ctx)
 *	{
 *		return fputs("hello\n", hm_ctx_request(ctx)) < 0 ? -1 : 0;
 *	}
 *	HM_MODULE(.handle = handle, .request_kind = "example-stdio/1");
 *
 * The request kind says what the request pointer is (here a FILE *): a
 * loader that serves another kind refuses the module (HM_EKIND) instead of
 * handing it a pointer to something else.  hotmod-httpd's modules say
 * .request_kind = HM_HTTP_KIND (hotmod_http.h).
 *
 * Every hook is optional and gets a per-call context.  See hotmod_module(3)
 * for the hook order, the failure rules and the threads hooks run on.
 */
#ifndef HOTMOD_MODULE_H
#define HOTMOD_MODULE_H

#include <hotmod.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * HM_ABI_VERSION changes only when the descriptor or the hook signatures
 * change incompatibly; the loader refuses a module built for another one.
 * Members appended to the descriptor do not change it: the descriptor's
 * size member tells the loader which members the module knows.
 */
#define HM_ABI_VERSION 1u

typedef struct hm_ctx hm_ctx;

/*
 * Hooks return 0 or a positive value on success, a negative value on
 * failure.  A hook that fails undoes its own partial work: the loader never
 * calls the same layer's commit/rollback/release after a failed prepare.
 */
struct hm_module_desc {
	uint32_t abi;  /* HM_ABI_VERSION */
	uint32_t size; /* sizeof(struct hm_module_desc) */
	/* Load/unload: once per version, no request running on it yet/any more. */
	int (*init)(hm_ctx *ctx);
	void (*fini)(hm_ctx *ctx);
	/* Around each request; see hotmod_module(3) for the order. */
	int (*prepare)(hm_ctx *ctx);
	int (*handle)(hm_ctx *ctx);
	int (*commit)(hm_ctx *ctx);
	void (*rollback)(hm_ctx *ctx);
	void (*release)(hm_ctx *ctx);
	/* Appended members: older modules' descriptors end before them. */
	/*
	 * What hm_ctx_request() points to, as the embedder names it
	 * ("hotmod-http/1"; the rule in hotmod.h, HM_REQUEST_KIND_MAX): a
	 * string literal of the module.  NULL: not said, and the loader then
	 * serves the module where the embedder allows (HM_OPEN_REQUIRE_KIND).
	 */
	const char *request_kind;
};

/* The one symbol the loader looks up in a module. */
#define HM_MODULE_SYMBOL "hotmod_module"

#if defined(__GNUC__)
#define HM__MODULE_VISIBLE __attribute__((visibility("default")))
#define HM__MODULE_EXPORT __attribute__((used))
#else
#define HM__MODULE_VISIBLE
#define HM__MODULE_EXPORT
#endif

/* Define the module's descriptor; the arguments are designated initialisers. */
/* Visibility on the declaration: g++ ignores it on a later definition. */
#define HM_MODULE(...)                                                        \
	HM__MODULE_VISIBLE extern const struct hm_module_desc hotmod_module;  \
	HM__MODULE_EXPORT const struct hm_module_desc hotmod_module = {       \
		.abi = HM_ABI_VERSION,                                        \
		.size = sizeof(struct hm_module_desc),                        \
		__VA_ARGS__}

/* The two layers a request passes through. */
enum hm_layer { HM_LAYER_GLOBAL = 0, HM_LAYER_MODULE = 1 };

/* The embedder's request pointer; NULL in init and fini. */
HM_EXTERN void *hm_ctx_request(const hm_ctx *ctx);
/* hm_options.app of the loader. */
HM_EXTERN void *hm_ctx_app(const hm_ctx *ctx);
HM_EXTERN hm_loader *hm_ctx_loader(const hm_ctx *ctx);
/* Which layer's hook is running now. */
HM_EXTERN enum hm_layer hm_ctx_layer(const hm_ctx *ctx);
/* "a/b.so" and the version number of the module this call is for. */
HM_EXTERN const char *hm_ctx_path(const hm_ctx *ctx);
HM_EXTERN uint64_t hm_ctx_version(const hm_ctx *ctx);
/* Version number of the global module in use, 0 when there is none. */
HM_EXTERN uint64_t hm_ctx_global_version(const hm_ctx *ctx);

/*
 * Per-version state: what init stored with hm_ctx_set_state() for the layer
 * whose hook runs (module or global), and the directory's global module's
 * state.  Shared by every request on that version, on any thread.
 */
HM_EXTERN void *hm_ctx_state(const hm_ctx *ctx);
HM_EXTERN void hm_ctx_set_state(hm_ctx *ctx, void *state); /* init only */
HM_EXTERN void *hm_ctx_global_state(const hm_ctx *ctx);

/*
 * State hand-over, in init: the state of the version this one replaces
 * (NULL if none), and taking it over.  hm_ctx_adopt() returns it and makes
 * it this version's state; the old version's fini then sees
 * hm_ctx_adopted() true and must leave it alone.  Requests on the old
 * version may use the state while the new version's requests start: it
 * must be thread-safe across versions.  A version's fini runs only after
 * the fini of every older version that handed its state on to it.
 */
HM_EXTERN void *hm_ctx_prev_state(const hm_ctx *ctx);
HM_EXTERN void *hm_ctx_adopt(hm_ctx *ctx);
HM_EXTERN int hm_ctx_adopted(const hm_ctx *ctx); /* fini only */

/*
 * Per-request slots, one per layer, NULL at the start of each call: the
 * global prepare can put a pooled connection in its slot and the module's
 * handler read it with *hm_ctx_slot(ctx, HM_LAYER_GLOBAL).
 */
HM_EXTERN void **hm_ctx_slot(hm_ctx *ctx, enum hm_layer layer);

/* The call that dispatched this one on the same thread, or NULL. */
HM_EXTERN hm_ctx *hm_ctx_outer(const hm_ctx *ctx);
/* Internal redirect: run path's chain now, with the same loader and request. */
HM_EXTERN int hm_ctx_dispatch(hm_ctx *ctx, const char *path);

/*
 * Named locks of the process, held by the request (hm_lock(3)): reentrant
 * within a request and its nested calls, exclusive between requests even
 * on one thread, released when the request's outermost call returns.
 * Waits are bounded (timeout_ms >= 0): HM_ETIMEDOUT, or HM_EDEADLK when
 * waiting would never end.
 */
#define HM_LOCK_SHARED 1u
#define HM_LOCK_EXCLUSIVE 2u
/* Or'd into the mode: a lock of every process that shares the embedder's
 * host table (hm_lock_host_init(), in hotmod.h). */
#define HM_LOCK_HOST 0x10u
/* hm_lock() returns it (> 0) when it had a host lock whose exclusive
 * holder died: what the lock protects may be half-changed. */
#define HM_LOCK_RECOVERED 1
#define HM_LOCK_NAME_MAX 255
HM_EXTERN int hm_lock(hm_ctx *ctx, const char *name, unsigned mode, int timeout_ms);
HM_EXTERN int hm_unlock(hm_ctx *ctx, const char *name);
/* The mode this request holds name in, 0 if none. */
HM_EXTERN int hm_lock_held(const hm_ctx *ctx, const char *name);

#ifdef __cplusplus
}
#endif
#endif /* HOTMOD_MODULE_H */
