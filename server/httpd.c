/* SPDX-License-Identifier: MIT */
/*
 * httpd.c - libmicrohttpd glue: one hm_http request per HTTP request, its
 * operations table, the mapping of URL paths to modules and of loader
 * errors to statuses, and the access log.
 *
 * URL "/a/b" is module path "a/b" (ROOT/a/b.so).  The loader refuses every
 * path that is not a plain module path; this file adds only what HTTP
 * brings: percent-decoding that never produces a NUL, and "/" -> "index".
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STATUS_PATH "/_hotmod/status"

struct kv {
	char *key;
	void *value;
};

struct hdr {
	char *name, *value;
};

struct req {
	struct hm_http http; /* first: the module's hm_http * is this */
	struct srv *srv;
	struct MHD_Connection *conn;
	const char *method, *url;
	char *body;
	size_t body_len;
	bool body_too_big;
	int status;
	struct hdr *hdrs;
	size_t nhdrs;
	char *out;
	size_t out_len, out_cap;
	bool oom;
	struct kv *kv;
	size_t nkv;
	struct timespec t0;
	size_t sent;
	struct req *prev, *next; /* srv.inflight, under srv.mu */
	struct srv_job job;      /* through the queue to a handler (loop.c) */
};

static struct req *req_of(struct srv_job *j)
{
	return (struct req *)((char *)j - offsetof(struct req, job));
}

/* ---- the operations modules call -------------------------------------------- */

static struct req *R(hm_http *r)
{
	return (struct req *)r;
}

static const char *op_method(hm_http *r)
{
	return R(r)->method;
}

static const char *op_path(hm_http *r)
{
	return R(r)->url;
}

static const char *op_query(hm_http *r, const char *name)
{
	return name ? MHD_lookup_connection_value(R(r)->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

static const char *op_header(hm_http *r, const char *name)
{
	return name ? MHD_lookup_connection_value(R(r)->conn, MHD_HEADER_KIND, name) : NULL;
}

static const void *op_body(hm_http *r, size_t *len)
{
	if (len)
		*len = R(r)->body_len;
	return R(r)->body ? R(r)->body : "";
}

static int op_set_status(hm_http *r, int status)
{
	if (status < 100 || status > 599)
		return -1;
	R(r)->status = status;
	return 0;
}

/* Header names are tokens; values carry no CR, LF or NUL. */
static bool header_ok(const char *name, const char *value)
{
	if (!name || !*name || !value)
		return false;
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p))
			return false;
	return strpbrk(value, "\r\n") == NULL;
}

static int op_set_header(hm_http *r, const char *name, const char *value)
{
	struct req *q = R(r);
	struct hdr *h;

	if (!header_ok(name, value))
		return -1;
	if (!(h = realloc(q->hdrs, (q->nhdrs + 1) * sizeof *h)))
		return -1;
	q->hdrs = h;
	h[q->nhdrs].name = strdup(name);
	h[q->nhdrs].value = strdup(value);
	if (!h[q->nhdrs].name || !h[q->nhdrs].value) {
		free(h[q->nhdrs].name);
		free(h[q->nhdrs].value);
		return -1;
	}
	q->nhdrs++;
	return 0;
}

static int op_write(hm_http *r, const void *data, size_t len)
{
	struct req *q = R(r);

	if (q->oom)
		return -1;
	if (q->out_len + len + 1 > q->out_cap) {
		size_t cap = q->out_cap ? q->out_cap : 256;
		while (cap < q->out_len + len + 1)
			cap *= 2;
		char *p = realloc(q->out, cap);
		if (!p) {
			q->oom = true;
			return -1;
		}
		q->out = p;
		q->out_cap = cap;
	}
	memcpy(q->out + q->out_len, data, len);
	q->out_len += len;
	return 0;
}

static int op_vprintf(hm_http *r, const char *fmt, va_list ap)
{
	char small[256], *big = NULL;
	va_list copy;
	int n, rc;

	va_copy(copy, ap);
	n = vsnprintf(small, sizeof small, fmt, copy);
	va_end(copy);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return op_write(r, small, (size_t)n);
	if (!(big = malloc((size_t)n + 1))) {
		R(r)->oom = true; /* the answer would miss a piece: 500, not that */
		return -1;
	}
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	rc = op_write(r, big, (size_t)n);
	free(big);
	return rc;
}

static void *op_get(hm_http *r, const char *key)
{
	struct req *q = R(r);

	for (size_t i = 0; key && i < q->nkv; i++)
		if (strcmp(q->kv[i].key, key) == 0)
			return q->kv[i].value;
	return NULL;
}

static int op_set(hm_http *r, const char *key, void *value)
{
	struct req *q = R(r);
	struct kv *kv;

	if (!key)
		return -1;
	for (size_t i = 0; i < q->nkv; i++) {
		if (strcmp(q->kv[i].key, key) == 0) {
			q->kv[i].value = value;
			return 0;
		}
	}
	if (!(kv = realloc(q->kv, (q->nkv + 1) * sizeof *kv)))
		return -1;
	q->kv = kv;
	if (!(kv[q->nkv].key = strdup(key)))
		return -1;
	kv[q->nkv++].value = value;
	return 0;
}

static const struct hm_http_ops ops = {
	.size = sizeof(struct hm_http_ops),
	.method = op_method,
	.path = op_path,
	.query = op_query,
	.header = op_header,
	.body = op_body,
	.set_status = op_set_status,
	.set_header = op_set_header,
	.write = op_write,
	.vprintf = op_vprintf,
	.get = op_get,
	.set = op_set,
};

static void req_free(struct req *q)
{
	for (size_t i = 0; i < q->nhdrs; i++) {
		free(q->hdrs[i].name);
		free(q->hdrs[i].value);
	}
	for (size_t i = 0; i < q->nkv; i++)
		free(q->kv[i].key);
	free(q->hdrs);
	free(q->kv);
	free(q->body);
	free(q->out);
	free(q);
}

/* ---- serving ------------------------------------------------------------------ */

/*
 * What a loader error means to a client.  Details stay in the log: a
 * client learns only that a path does not exist, is being deployed, or
 * failed.
 */
static int status_of(int rc)
{
	switch (rc) {
	case HM_ENOENT:
	case HM_EBADPATH:
	case HM_EESCAPE:
	case HM_ENOTREG:
	case HM_ENOHANDLER:
		return MHD_HTTP_NOT_FOUND;
	case HM_ECHANGED: /* no working version, its file is being written */
	case HM_ECLOSED:
	case HM_EREFUSED: /* quarantined: it crashed a worker */
	case HM_ETIMEDOUT: /* a lock (hm_lock) not had in time: try again */
	case HM_EDEADLK:
	case HM_ETOOMANY:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 404:
		return "Not Found\n";
	case 413:
		return "Payload Too Large\n";
	case 503:
		return "Service Unavailable\n";
	default:
		return "Internal Server Error\n";
	}
}

/* Replace whatever the handler wrote with a plain error page. */
static void error_page(struct req *q, int status)
{
	q->status = status;
	q->out_len = 0;
	q->oom = false;
	for (size_t i = 0; i < q->nhdrs; i++) {
		free(q->hdrs[i].name);
		free(q->hdrs[i].value);
	}
	q->nhdrs = 0;
	op_write(&q->http, reason(status), strlen(reason(status)));
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		op_set_header(&q->http, "Retry-After", "1");
}

/*
 * What a client sent (URL, method) may hold any byte but NUL: a "%0a" must
 * not forge a log line, nor ESC paint the operator's terminal.  Copy with non-printable bytes as \xHH, cut at a sane length.
 */
static const char *printable(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
		else
			buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return buf;
}

/* Say in the worker's tracks that q runs (NULL: no track free, or none). */
static struct srv_track *track_start(const struct req *q)
{
	char m[64], u[192];

	for (unsigned i = 0; srv_shared && i < SRV_TRACKS; i++) {
		struct srv_track *t = &srv_shared->tracks[i];
		unsigned free_ = 0;
		/* acquire: pairs with track_end()'s release, so that the last
		 * user's writes to what come before this thread's */
		if (!atomic_compare_exchange_strong_explicit(&t->state, &free_, 1,
			    memory_order_acquire, memory_order_relaxed))
			continue;
		snprintf(t->what, sizeof t->what, "%s %s", printable(q->method, m, sizeof m),
			printable(q->url, u, sizeof u));
		/* release: a reader that sees 2 sees what was written */
		atomic_store_explicit(&t->state, 2, memory_order_release);
		return t;
	}
	return NULL;
}

static void track_end(struct srv_track *t)
{
	if (t)
		atomic_store_explicit(&t->state, 0, memory_order_release);
}

static void serve_status(struct req *q)
{
	size_t len;
	char *json = srv_status_json(q->srv->loader, &len);

	if (!json) {
		error_page(q, 500);
		return;
	}
	op_write(&q->http, json, len);
	free(json);
	op_set_header(&q->http, "Content-Type", "application/json");
}

static void serve(struct req *q)
{
	struct srv *s = q->srv;
	const char *path = q->url;
	int rc;

	if (path[0] == '/' && path[1] == '\0')
		path = "/index";
	struct srv_track *t = track_start(q);
	/* While a canary runs, which build answers is counted: the version is
	 * held, to be asked, instead of dispatched by name. */
	hm_module *held = NULL;
	if (!srv_builds_canaries())
		rc = s->serve(s, path, &q->http);
	else if ((rc = hm_get(s->loader, path, &held)) == 0)
		rc = hm_call(held, &q->http);
	track_end(t);
	if (rc == HM_EHOOK && q->status >= 400 && q->status < 500 && !q->oom) {
		/* A client error the handler answered itself, failing so that
		 * the chain rolls back: its response stands. */
	} else if (rc < 0) {
		int status = status_of(rc);
		if (status == 500) {
			char m[64], u[512];
			srv_log("error", "%s %s: %s", printable(q->method, m, sizeof m),
				printable(q->url, u, sizeof u), hm_errmsg());
		}
		error_page(q, status);
	} else if (q->oom) {
		char m[64], u[512];
		srv_log("error", "%s %s: out of memory for the response",
			printable(q->method, m, sizeof m), printable(q->url, u, sizeof u));
		error_page(q, 500);
	}
	unsigned char digest[HM_DIGEST_SIZE];
	if (held && hm_module_digest(held, digest) == 0)
		srv_builds_served(hm_module_path(held), digest, q->status);
	hm_put(held);
}

static enum MHD_Result respond(struct req *q)
{
	struct MHD_Response *resp;
	bool has_type = false;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer_with_free_callback(q->out_len,
		q->out_len ? q->out : (char *)"", q->out_len ? free : NULL);
	if (!resp) {
		srv_log("error", "out of memory for a response: connection closed");
		return MHD_NO;
	}
	if (q->out_len)
		q->out = NULL; /* the response owns it now */
	q->sent = q->out_len;
	for (size_t i = 0; i < q->nhdrs; i++) {
		MHD_add_response_header(resp, q->hdrs[i].name, q->hdrs[i].value);
		has_type |= strcasecmp(q->hdrs[i].name, "Content-Type") == 0;
	}
	if (!has_type)
		MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
	ret = MHD_queue_response(q->conn, (unsigned)q->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static const char *client(struct MHD_Connection *conn, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (sa && sa->sa_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
			(socklen_t)size);
	if (sa && sa->sa_family == AF_INET6)
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			(socklen_t)size);
	return "-";
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload, size_t *upload_size,
	void **con_cls)
{
	struct srv *s = cls;
	struct req *q = *con_cls;

	(void)version;
	if (!q) { /* the head is in: start the request */
		srv_head_in(s, conn);
		if (!(q = calloc(1, sizeof *q))) {
			srv_log("error", "out of memory for a request: connection closed");
			return MHD_NO;
		}
		q->http.ops = &ops;
		q->srv = s;
		q->conn = conn;
		q->method = method;
		q->url = url;
		q->status = MHD_HTTP_OK;
		clock_gettime(CLOCK_MONOTONIC, &q->t0);
		pthread_mutex_lock(&s->mu);
		q->next = s->inflight;
		if (q->next)
			q->next->prev = q;
		s->inflight = q;
		pthread_mutex_unlock(&s->mu);
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) { /* a piece of the body */
		if (!q->body_too_big && q->body_len + *upload_size <= SRV_MAX_BODY) {
			char *b = realloc(q->body, q->body_len + *upload_size + 1);
			if (!b) {
				srv_log("error", "out of memory for a request body: "
						 "connection closed");
				return MHD_NO;
			}
			memcpy(b + q->body_len, upload, *upload_size);
			q->body = b;
			q->body_len += *upload_size;
			q->body[q->body_len] = '\0';
		} else {
			q->body_too_big = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	switch (q->job.state) {
	case SRV_JOB_NONE: /* all of it is in */
		if (q->body_too_big) {
			error_page(q, MHD_HTTP_CONTENT_TOO_LARGE);
			return respond(q);
		}
		if (strcmp(q->url, STATUS_PATH) == 0) {
			serve_status(q);
			return respond(q);
		}
		if (s->limits.inline_handlers) {
			srv_run_inline(s, &q->job, conn);
			return respond(q);
		}
		srv_submit(s, &q->job, conn);
		return MHD_YES;
	case SRV_JOB_DONE:
		if (q->job.late) /* answered at the deadline: close */
			return MHD_NO;
		return respond(q);
	case SRV_JOB_REFUSED:
		error_page(q, MHD_HTTP_SERVICE_UNAVAILABLE);
		return respond(q);
	default: /* cannot be: it is suspended while queued or running */
		return MHD_NO;
	}
}

void srv_run(struct srv *s, struct srv_job *j)
{
	(void)s;
	serve(req_of(j));
}

void srv_late(struct srv *s, struct srv_job *j, int64_t ms)
{
	struct req *q = req_of(j);
	char m[64], u[512], addr[64];

	(void)s;
	srv_log("warn", "%s \"%s %s\": no answer after %lld ms (--request-timeout): "
			"answered 503, the handler still runs",
		client(q->conn, addr, sizeof addr), printable(q->method, m, sizeof m),
		printable(q->url, u, sizeof u), (long long)ms);
}

void srv_stuck(struct srv *s, struct srv_job *j, int64_t ms)
{
	struct req *q = req_of(j);
	char m[64], u[512];

	srv_log("error", "\"%s %s\" has been in its handler for %lld s, past --harakiri%s",
		printable(q->method, m, sizeof m), printable(q->url, u, sizeof u),
		(long long)(ms / 1000), s->stuck ? ": this worker is replaced" : "");
	if (s->stuck)
		s->stuck(s);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode why)
{
	struct srv *s = cls;
	struct req *q = *con_cls;
	struct timespec t1;

	if (!q)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	char url[512], addr[64], method[64];
	if (!s->quiet)
		srv_log("access", "%s \"%s %s\" %d %zu %.3f ms%s", client(conn, addr, sizeof addr),
			printable(q->method, method, sizeof method),
			printable(q->url, url, sizeof url),
			q->job.late ? MHD_HTTP_SERVICE_UNAVAILABLE : q->status,
			q->job.late ? srv_late_length : q->sent,
			(double)(t1.tv_sec - q->t0.tv_sec) * 1e3 +
				(double)(t1.tv_nsec - q->t0.tv_nsec) / 1e6,
			q->job.late ? " (answered 503 at --request-timeout)" :
			why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (not completed)");
	pthread_mutex_lock(&s->mu);
	if (q->prev)
		q->prev->next = q->next;
	else
		s->inflight = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (!s->inflight)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
	req_free(q);
	*con_cls = NULL;
	/* Kept alive, the connection waits for its next head; closed, it
	 * is forgotten by srv_on_connection() next. */
	srv_head_next(s, conn);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/*
 * Percent-decoding that never makes a NUL: "%00" stays as it is, and the
 * loader then refuses the '%' in the path.  A decoded NUL would cut
 * "/hello%00.txt" to "/hello" and serve a module the client did not name.
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;

	(void)cls;
	(void)conn;
	for (const char *p = s; *p; p++) {
		int hi = p[0] == '%' ? hexval(p[1]) : -1, lo = hi >= 0 ? hexval(p[2]) : -1;
		if (lo >= 0 && (hi | lo) != 0) {
			*w++ = (char)(hi << 4 | lo);
			p += 2;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* "127.0.0.1:8080", "[::1]:8080", ":8080" (loopback) -> socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon;
	char *end;
	long port;

	memset(ss, 0, sizeof *ss);
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof host)
			return -1;
		snprintf(host, sizeof host, "%.*s", (int)(close - listen - 1), listen + 1);
		colon = close + 1;
	} else {
		if (!(colon = strrchr(listen, ':')) || (size_t)(colon - listen) >= sizeof host)
			return -1;
		snprintf(host, sizeof host, "%.*s", (int)(colon - listen),
			listen);
		if (!*host)
			snprintf(host, sizeof host, "127.0.0.1");
	}
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -1;
}

/*
 * libmicrohttpd's messages.  A client can cause one per connection (at the
 * connection limit, say): at most 10 a second are written, and the next
 * one says how many were not.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static atomic_llong second;
	static atomic_uint written, dropped;
	long long now = (long long)(srv_now_ms() / 1000), was;
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	/* A client that went away, or that a deadline cut off: its business,
	 * not the operator's, unless they ask (--verbose).  So is the close
	 * after a 503 sent at --request-timeout ("Application reported
	 * internal error"): each real failure behind that message is logged
	 * here on its own. */
	if (!srv_verbose && (strstr(buf, "connection closure") ||
			     strstr(buf, "Application reported internal error")))
		return;
	was = atomic_load(&second);
	if (now != was && atomic_compare_exchange_strong(&second, &was, now))
		atomic_store(&written, 0);
	if (atomic_fetch_add(&written, 1) >= 10) {
		atomic_fetch_add(&dropped, 1);
		return;
	}
	unsigned n = atomic_exchange(&dropped, 0);
	if (n)
		srv_log("httpd", "%s (%u more messages were not logged)", buf, n);
	else
		srv_log("httpd", "%s", buf);
}

int srv_bind(const char *addr)
{
	struct sockaddr_storage ss;
	int fd, one = 1;

	if (parse_listen(addr, &ss) < 0) {
		srv_log("error", "--listen %s: expected ADDRESS:PORT, e.g. 127.0.0.1:8080 or "
				 "[::1]:8080", addr);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		srv_log("error", "cannot listen on %s: socket: %s", addr, strerror(errno));
		return -1;
	}
	/* Non-blocking: with worker processes every one of them polls this
	 * socket, and those that lose the race for a connection must not
	 * block in accept(). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		srv_log("error", "cannot listen on %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

unsigned srv_bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int srv_start(struct srv *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	unsigned flags = srv_loop_flags();

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 && ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->idle, NULL);
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first, as MHD asks */
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, s->limits.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, s->limits.idle_timeout_s,
		MHD_OPTION_NOTIFY_CONNECTION, srv_on_connection, s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
		MHD_OPTION_END);
	if (!s->mhd) {
		srv_log("error", "cannot serve on port %u: %s", srv_bound_port(fd),
			strerror(errno));
		return -1;
	}
	if (srv_loop_start(s) < 0) {
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
		return -1;
	}
	return 0;
}

bool srv_stop(struct srv *s, int grace_ms)
{
	struct timespec deadline, now;
	int rc = 0;

	if (!s->mhd)
		return true;
	/* Stop accepting; connections already open finish their request. */
	srv_loop_quiesce(s);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += grace_ms / 1000;
	deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	while (s->inflight && rc == 0)
		rc = pthread_cond_timedwait(&s->idle, &s->mu, &deadline);
	if (s->inflight) {
		unsigned n = 0;
		for (struct req *q = s->inflight; q; q = q->next)
			n++;
		/* Their handlers do not return: stopping the daemon would wait
		 * for them for ever.  Say which they are; the caller exits. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		srv_log("warn", "%u request%s still running after %d ms: abandoned",
			n, n == 1 ? "" : "s", grace_ms);
		for (struct req *q = s->inflight; q; q = q->next) {
			char m[64], u[512], addr[64];
			srv_log("warn", "abandoned: %s \"%s %s\" after %.0f ms",
				client(q->conn, addr, sizeof addr),
				printable(q->method, m, sizeof m), printable(q->url, u, sizeof u),
				(double)(now.tv_sec - q->t0.tv_sec) * 1e3 +
					(double)(now.tv_nsec - q->t0.tv_nsec) / 1e6);
		}
		pthread_mutex_unlock(&s->mu);
		return false;
	}
	pthread_mutex_unlock(&s->mu);
	srv_loop_stop(s);
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
	return true;
}
