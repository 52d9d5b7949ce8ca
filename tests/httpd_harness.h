/* SPDX-License-Identifier: MIT */
/*
 * httpd_harness.h - hotmod-httpd driven end to end by the check_httpd*
 * suites: the real server, started on a free loopback port over a fresh
 * root, requests made with libcurl, its status read as strict JSON.
 *
 * httpd_setup() gives each test a temporary directory base with the served
 * root in www (the built samples, the notes app in www/app and the probe
 * fixture installed with install(1)), the notes database and a FIFO in
 * base, outside the root.  The server's stderr is read by a thread: tests
 * wait for its log lines ("probe.so version 2 loaded") on a condition,
 * never for a time.  A request is held inside a handler with the probe's
 * FIFO gate (tests/fixtures/http_probe.c): the log says when it is parked
 * and the test says when it may go on (gated(), gate_release()).
 *
 * httpd_teardown() stops the server with SIGTERM and wants exit status 0:
 * a leak, a race or a crash found by a sanitizer in the server fails the
 * test that caused it.
 */
#ifndef TESTS_HTTPD_HARNESS_H
#define TESTS_HTTPD_HARNESS_H

#include "util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#define SERVER TOP_BUILDDIR "/server/hotmod-httpd"
#define SAMPLES TOP_BUILDDIR "/sample_handlers/.libs"
#define APP TOP_BUILDDIR "/sample_handlers/app/.libs"
/* Bound on every wait: a broken feature fails the test, it does not hang. */
#define WAIT_S 30

/* The notes app is built (configure --with-sqlite): its tests run. */
extern bool have_app;
/* This test's temporary directory and the served root below it. */
extern char *base, *www;

/* ---- the server ---------------------------------------------------------- */

/* Start the server on a free port with --root www and extra options
 * (NULL-terminated, or NULL; --workers 1 unless they say --workers,
 * --allow-root unless they say --user). */
void server_start(const char *const *extra);
/* SIGTERM, then its exit status (server_reap). */
int server_stop(void);
/* Wait for it to exit (killed after WAIT_S); its exit status, or 128 + the
 * signal that ended it. */
int server_reap(void);
/* kill(2) the running server with sig; kill's result. */
int server_kill(int sig);
/* The server's process (the master, or the one process with --workers 0). */
pid_t server_pid(void);
/* Its children now (the workers), at most max of them; how many. */
size_t server_workers(pid_t *out, size_t max);
/* The first number on the line "field:" of /proc/PID/status ("Threads",
 * "Uid"), or -1. */
long proc_status(pid_t pid, const char *field);
/* Whether a TCP connection to the server's port is refused. */
bool server_refuses_connections(void);
/* A TCP connection to the server (blocking; to close). */
int server_connect(void);
/* Read fd until the server closes it (EOF or a reset): true, what came in
 * buf (NUL-terminated; buf may be NULL); false when it stays open WAIT_S,
 * or buf fills. */
bool closed_by_server(int fd, char *buf, size_t size);
/* Run the server binary with args (no server_start), its stdout and stderr
 * in *out (to free); its exit status. */
int capture(const char *const args[], char **out);

/* How often needle is in its log so far. */
size_t log_count(const char *needle);
bool log_has(const char *needle);
/* Wait until needle is in the log; false after WAIT_S, or once the server
 * is gone without having logged it. */
bool log_wait(const char *needle);
/* Lines that hold a and then b ("worker 2 ", ") is quarantined: "): how
 * many; wait until there are n (false after WAIT_S). */
size_t log_count_lines(const char *a, const char *b);
bool log_wait_lines(const char *a, const char *b, size_t n);

/* The probe's path, held at the gate until gate_release() (to free). */
char *gated(const char *path);
/* Let the request parked at the gate go on; false when none waits. */
bool gate_release(void);

/* ---- HTTP ---------------------------------------------------------------- */

struct resp {
	CURLcode rc;
	long status;
	char *body; /* NUL-terminated */
	size_t len;
	char *type;   /* Content-Type, or NULL */
	long version; /* X-Hotmod-Version (the probe's), or 0 */
};

/*
 * One request on a new connection.  The path goes out byte for byte
 * (CURLOPT_PATH_AS_IS: no "/../" squashed by curl).  No assertion here:
 * request threads call it too.  A body makes it a POST unless method says
 * otherwise.
 */
struct resp http(const char *method, const char *path, const void *body, size_t len);
void resp_free(struct resp *r);
/* GET path, which must get an answer (any status). */
struct resp get(const char *path);
/* GET path must answer status with exactly body. */
void expect(const char *path, long status, const char *body);
/* Wait until GET path answers 200 with body; false after WAIT_S. */
bool answers(const char *path, const char *body);

/* A GET on its own thread, to be held in a handler. */
struct bg {
	pthread_t thread;
	char *path;
	struct resp r;
	atomic_bool done;
};
void bg_start(struct bg *b, const char *path);
/* Join it; its answer, which must have come (to resp_free). */
struct resp bg_join(struct bg *b);

/* ---- JSON ---------------------------------------------------------------- */

/*
 * What the server writes is read with jansson as strictly as it parses:
 * one object or array and nothing after it (no JSON_DECODE_ANY, no
 * JSON_DISABLE_EOF_CHECK), no "\u0000" in a string (no JSON_ALLOW_NUL), no
 * key twice in an object (JSON_REJECT_DUPLICATES); jansson itself refuses
 * text that is not UTF-8 or not JSON.
 */
#define HTTPD_JSON_FLAGS JSON_REJECT_DUPLICATES
/* text[0..len) read with HTTPD_JSON_FLAGS; NULL and *err set if refused. */
json_t *json_strict(const char *text, size_t len, json_error_t *err);
/* Members that must be there with this type. */
double jnum(const json_t *obj, const char *key);
const char *jstr(const json_t *obj, const char *key);

/* /_hotmod/status, checked to be strict JSON with the documented members
 * (to json_decref). */
json_t *status_get(void);
/* The status object of the module file path ("probe.so"), or NULL. */
json_t *module_of(const json_t *st, const char *path);
/* The version object of number version in module m, or NULL. */
json_t *version_of(const json_t *m, double version);

/* ---- the served tree ----------------------------------------------------- */

/* install(1) src as www/rel (mode 644, directories made). */
void install(const char *src, const char *rel);
/* The built file with different bytes, as a rebuild makes it (base/name;
 * to free): the loader skips content it has loaded already. */
char *rebuilt(const char *src, const char *name);

/* A checked fixture's: a fresh base and www; the server stopped (exit 0). */
void httpd_setup(void);
void httpd_teardown(void);

/* main() of a check_httpd* program: have_app found, libcurl set up, the
 * suite run. */
int httpd_main(const char *prog, Suite *(*suite)(void));

#endif
