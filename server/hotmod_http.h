/* SPDX-License-Identifier: MIT */
/*
 * hotmod_http.h - the HTTP request and response, for modules served by
 * hotmod-httpd (or any server that implements this header).
 *
 * The request pointer a module's hooks get, hm_ctx_request(ctx), is an
 * hm_http *.  It carries a table of operations filled in by the server, and
 * these inline functions call through it: a module needs no symbol from the
 * server, and the table's size member lets it grow.
 *
 *	#include <hotmod_http.h>
 *
 *	static int handle(hm_ctx *ctx)
 *	{
 *		return hm_http_puts(hm_ctx_request(ctx), "Hello from hotmod!\n");
 *	}
 *	HM_MODULE(.handle = handle, .request_kind = HM_HTTP_KIND);
 *
 * HM_HTTP_KIND tells the server that the module was built for this
 * header: a module built for another kind of request is refused at load
 * (HM_EKIND), not handed an hm_http * it would misread.
 * A handler that returns a negative value fails the request: the chain
 * rolls back and the server answers 500, hiding the reason (it is logged).
 * But a handler that set a 4xx status before failing - a client error
 * found after writing, which must roll back - gets its response sent.
 *
 * Everything returned by the request functions stays valid until the
 * handler chain of this request has returned.  Strings passed in are
 * copied.  A request belongs to one thread at a time: do not keep it, nor
 * share it with other threads.  See hotmod_http(3).
 */
#ifndef HOTMOD_HTTP_H
#define HOTMOD_HTTP_H

#include <hotmod_module.h>
#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The request kind (hotmod.h) of an hm_http *: what hotmod-httpd serves.
 * Its version changes only if hm_http changes incompatibly; the operations
 * table grows compatibly (its size member), under the same kind.
 */
#define HM_HTTP_KIND "hotmod-http/1"

typedef struct hm_http hm_http;

struct hm_http_ops {
	size_t size; /* sizeof(struct hm_http_ops) of the server */
	const char *(*method)(hm_http *r);
	const char *(*path)(hm_http *r); /* decoded URL path, "/a/b" */
	const char *(*query)(hm_http *r, const char *name);
	const char *(*header)(hm_http *r, const char *name);
	const void *(*body)(hm_http *r, size_t *len);
	int (*set_status)(hm_http *r, int status);
	int (*set_header)(hm_http *r, const char *name, const char *value);
	int (*write)(hm_http *r, const void *data, size_t len);
	int (*vprintf)(hm_http *r, const char *fmt, va_list ap);
	void *(*get)(hm_http *r, const char *key);
	int (*set)(hm_http *r, const char *key, void *value);
};

struct hm_http {
	const struct hm_http_ops *ops;
};

/* "GET", "POST", ... */
static inline const char *hm_http_method(hm_http *r)
{
	return r->ops->method(r);
}

/* The URL path, percent-decoded: "/notes". */
static inline const char *hm_http_path(hm_http *r)
{
	return r->ops->path(r);
}

/* A query argument ("?ms=200" -> "200"), or NULL. */
static inline const char *hm_http_query(hm_http *r, const char *name)
{
	return r->ops->query(r, name);
}

/* A request header (any case), or NULL. */
static inline const char *hm_http_header(hm_http *r, const char *name)
{
	return r->ops->header(r, name);
}

/* The request body and its length; "" and 0 when there is none. */
static inline const void *hm_http_body(hm_http *r, size_t *len)
{
	return r->ops->body(r, len);
}

/* Response status (default 200).  0, or -1 for a status outside 100-599. */
static inline int hm_http_set_status(hm_http *r, int status)
{
	return r->ops->set_status(r, status);
}

/* Add a response header.  0, or -1 when a name or value is not allowed. */
static inline int hm_http_set_header(hm_http *r, const char *name, const char *value)
{
	return r->ops->set_header(r, name, value);
}

/* Append to the response body: 0, or -1 when out of memory. */
static inline int hm_http_write(hm_http *r, const void *data, size_t len)
{
	return r->ops->write(r, data, len);
}

static inline int hm_http_puts(hm_http *r, const char *s)
{
	const char *e = s;
	while (*e)
		e++;
	return r->ops->write(r, s, (size_t)(e - s));
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline int hm_http_printf(hm_http *r, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = r->ops->vprintf(r, fmt, ap);
	va_end(ap);
	return rc;
}

/*
 * Data attached to this request by one handler for another, across an
 * internal redirect (hm_ctx_dispatch): the request is the same object.
 * The value is the caller's; it must outlive its use.  set returns 0, or -1
 * when out of memory.
 */
static inline void *hm_http_get(hm_http *r, const char *key)
{
	return r->ops->get(r, key);
}

static inline int hm_http_set(hm_http *r, const char *key, void *value)
{
	return r->ops->set(r, key, value);
}

#ifdef __cplusplus
}
#endif
#endif /* HOTMOD_HTTP_H */
