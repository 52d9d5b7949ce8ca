/* SPDX-License-Identifier: MIT */
/*
 * httpd_harness.c - hotmod-httpd started, read and stopped for the
 * check_httpd* suites; requests over libcurl; strict JSON with jansson.
 * See httpd_harness.h.
 */
#include "config.h" /* _GNU_SOURCE */
#include "httpd_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

bool have_app;
char *base, *www;

/* ---- the server: started, its log read, stopped --------------------------------- */

struct server {
	pid_t pid; /* 0: not running */
	int err;   /* read end of its stderr */
	pthread_t reader;
	unsigned port;
	pthread_mutex_t mu; /* protects log, len, cap, eof */
	pthread_cond_t cv;  /* more log, or eof */
	char *log;
	size_t len, cap;
	bool eof;
};

static struct server srv = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static char *db_path, *gate_path;

/*
 * Check ends a failed test with _exit(): no teardown, no atexit.  So that
 * its log still says what the server did, every line but the access log
 * goes to this program's stderr (tests/check_httpd.log) as it comes.
 */
static void echo_lines(const char *from, const char *to)
{
	while (from < to) {
		const char *nl = memchr(from, '\n', (size_t)(to - from));
		if (!nl)
			return;
		if (!memmem(from, (size_t)(nl - from), " access: ", 9)) {
			fprintf(stderr, "  hotmod-httpd[%d]| ", (int)srv.pid);
			for (const char *p = from; p < nl; p++) /* nothing raw on a terminal */
				fprintf(stderr, (unsigned char)*p < 0x20 || *p == 0x7f ? "\\x%02x" : "%c",
					(unsigned char)*p);
			fputc('\n', stderr);
		}
		from = nl + 1;
	}
}

static void *reader_main(void *arg)
{
	char buf[4096];
	size_t echoed = 0;
	ssize_t n;

	(void)arg;
	while ((n = read(srv.err, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		pthread_mutex_lock(&srv.mu);
		if (srv.len + (size_t)n + 1 > srv.cap) {
			size_t cap = srv.cap ? srv.cap * 2 : 1 << 16;
			while (cap < srv.len + (size_t)n + 1)
				cap *= 2;
			char *p = realloc(srv.log, cap);
			if (!p)
				abort();
			srv.log = p;
			srv.cap = cap;
		}
		memcpy(srv.log + srv.len, buf, (size_t)n);
		srv.len += (size_t)n;
		srv.log[srv.len] = '\0';
		const char *last = memrchr(srv.log + echoed, '\n', srv.len - echoed);
		if (last) {
			echo_lines(srv.log + echoed, last + 1);
			echoed = (size_t)(last + 1 - srv.log);
		}
		pthread_cond_broadcast(&srv.cv);
		pthread_mutex_unlock(&srv.mu);
	}
	pthread_mutex_lock(&srv.mu);
	srv.eof = true;
	pthread_cond_broadcast(&srv.cv);
	pthread_mutex_unlock(&srv.mu);
	return NULL;
}

static size_t count_in(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* How often needle is in the log so far. */
size_t log_count(const char *needle)
{
	pthread_mutex_lock(&srv.mu);
	size_t n = count_in(srv.log, needle);
	pthread_mutex_unlock(&srv.mu);
	return n;
}

bool log_has(const char *needle)
{
	return log_count(needle) > 0;
}

/* Wait until found(log, a, b, n) holds; false after WAIT_S, or once the
 * server is gone without it. */
static bool wait_log(bool (*found)(const char *log, const char *a, const char *b, size_t n),
	const char *a, const char *b, size_t n)
{
	struct timespec deadline;
	int rc = 0;
	bool yes;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_S;
	pthread_mutex_lock(&srv.mu);
	while (!(yes = srv.log && found(srv.log, a, b, n)) && !srv.eof && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&srv.cv, &srv.mu, &deadline);
	pthread_mutex_unlock(&srv.mu);
	return yes;
}

static bool has(const char *log, const char *a, const char *b, size_t n)
{
	(void)b;
	(void)n;
	return strstr(log, a) != NULL;
}

bool log_wait(const char *needle)
{
	return wait_log(has, needle, NULL, 1);
}

/* Lines of log that hold a, and b after it; srv.mu held. */
static size_t lines_with(const char *log, const char *a, const char *b)
{
	size_t n = 0;

	for (const char *p = log; p && (p = strstr(p, a)) != NULL;) {
		const char *eol = strchr(p, '\n'), *q = strstr(p + strlen(a), b);
		if (q && (!eol || q < eol))
			n++;
		p = eol;
	}
	return n;
}

static bool has_lines(const char *log, const char *a, const char *b, size_t n)
{
	return lines_with(log, a, b) >= n;
}

bool log_wait_lines(const char *a, const char *b, size_t n)
{
	return wait_log(has_lines, a, b, n);
}

size_t log_count_lines(const char *a, const char *b)
{
	pthread_mutex_lock(&srv.mu);
	size_t n = srv.log ? lines_with(srv.log, a, b) : 0;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

/* Wait until the server closed its stderr, that is exited; false after WAIT_S. */
static bool log_wait_eof(void)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_S;
	pthread_mutex_lock(&srv.mu);
	while (!srv.eof && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&srv.cv, &srv.mu, &deadline);
	bool eof = srv.eof;
	pthread_mutex_unlock(&srv.mu);
	return eof;
}

/* A gate is released by opening its FIFO for writing and closing it.  The
 * open fails (ENXIO) when no request waits at it. */
bool gate_release(void)
{
	int fd = open(gate_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Reap the server; its exit status, or 128 + the signal that ended it.
 * Killed if it is still running after WAIT_S. */
int server_reap(void)
{
	int status;

	if (!log_wait_eof()) {
		fprintf(stderr, "hotmod-httpd did not exit: killing it\n");
		kill(srv.pid, SIGKILL);
	}
	while (waitpid(srv.pid, &status, 0) < 0 && errno == EINTR)
		;
	pthread_join(srv.reader, NULL);
	close(srv.err);
	srv.pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * A failed assertion ends the test: with fork (the default) Check then
 * kills the test's process group, the server with it; without fork
 * (CK_FORK=no) it returns to the runner and the process exits here.
 */
static void at_exit(void)
{
	if (!srv.pid)
		return;
	gate_release();
	kill(srv.pid, SIGKILL);
	waitpid(srv.pid, NULL, 0);
	srv.pid = 0;
}

/* Start the server on a free port with --root www and extra options. */
void server_start(const char *const *extra)
{
	const char *argv[24] = {SERVER, "--root", www, "--listen", "127.0.0.1:0"};
	posix_spawn_file_actions_t fa;
	size_t argc = 5, nenv = 0;
	char **env, *db_env, *port;
	int fds[2];

	bool workers = false, user = false;

	for (; extra && *extra && argc < 20; extra++) {
		workers |= strcmp(*extra, "--workers") == 0;
		user |= strcmp(*extra, "--user") == 0;
		argv[argc++] = *extra;
	}
	/* The tests run as root, often: serving as root must be asked for. */
	if (!user)
		argv[argc++] = "--allow-root";
	/* One worker unless a test says otherwise: a log line such as
	 * "probe.so version 2 loaded" then says what every request gets. */
	if (!workers) {
		argv[argc++] = "--workers";
		argv[argc++] = "1";
	}
	argv[argc] = NULL;
	/* The environment, with the notes app's database outside the root. */
	while (environ[nenv])
		nenv++;
	env = calloc(nenv + 2, sizeof *env);
	ck_assert_ptr_nonnull(env);
	nenv = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "HOTMOD_NOTES_DB=", 16) != 0)
			env[nenv++] = *e;
	ck_assert(asprintf(&db_env, "HOTMOD_NOTES_DB=%s", db_path) > 0);
	env[nenv] = db_env;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
	/* dup2 clears close-on-exec on fd 2 only; nothing else leaks */
	ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, fds[1], 2), 0);
	pthread_mutex_lock(&srv.mu);
	srv.len = 0;
	if (srv.log)
		srv.log[0] = '\0';
	srv.eof = false;
	pthread_mutex_unlock(&srv.mu);
	ck_assert_int_eq(posix_spawn(&srv.pid, SERVER, &fa, NULL, (char *const *)argv, env), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	free(db_env);
	free(env);
	srv.err = fds[0];
	ck_assert_int_eq(pthread_create(&srv.reader, NULL, reader_main, NULL), 0);

	/* "serving ROOT on 127.0.0.1:0, port 41234, 1 worker process" (or
	 * "..., 16 handler threads" with --workers 0), written at once:
	 * when ", port " is in, so is the number */
	ck_assert_msg(log_wait(", port "), "hotmod-httpd did not start");
	pthread_mutex_lock(&srv.mu);
	port = strstr(srv.log, ", port ");
	ck_assert_ptr_nonnull(port);
	ck_assert_int_eq(sscanf(port, ", port %u,", &srv.port), 1);
	pthread_mutex_unlock(&srv.mu);
	ck_assert_uint_gt(srv.port, 0);
}

/* SIGTERM, then its exit status. */
int server_stop(void)
{
	gate_release(); /* a request parked by a failed test */
	ck_assert_int_eq(kill(srv.pid, SIGTERM), 0);
	return server_reap();
}

int server_kill(int sig)
{
	return kill(srv.pid, sig);
}

pid_t server_pid(void)
{
	return srv.pid;
}

size_t server_workers(pid_t *out, size_t max)
{
	char path[64], buf[512];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)srv.pid, (int)srv.pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	if (fgets(buf, sizeof buf, f))
		for (char *p = buf, *end; n < max; p = end) {
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			out[n++] = (pid_t)pid;
		}
	fclose(f);
	return n;
}

long proc_status(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t len = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, len) == 0 && line[len] == ':' &&
		    sscanf(line + len + 1, "%ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* ---- HTTP ------------------------------------------------------------------------ */

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	static const char name[] = "X-Hotmod-Version:";

	if (size * n > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0)
		r->version = strtol(p + sizeof name - 1, NULL, 10);
	return size * n;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	char *b = realloc(r->body, r->len + size * n + 1);

	if (!b)
		return 0;
	memcpy(b + r->len, p, size * n);
	r->len += size * n;
	b[r->len] = '\0';
	r->body = b;
	return size * n;
}

/*
 * One request on a new connection.  The path goes out byte for byte
 * (CURLOPT_PATH_AS_IS: no "/../" squashed by curl).  No assertion here:
 * request threads call it too.
 */
struct resp http(const char *method, const char *path, const void *body, size_t len)
{
	struct resp r = {0};
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
	CURL *c = curl_easy_init();
	char *url = NULL, *type = NULL;

	if (!c || !hdrs || asprintf(&url, "http://127.0.0.1:%u%s", srv.port, path) < 0) {
		r.rc = CURLE_OUT_OF_MEMORY;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)WAIT_S + 10);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (strcmp(method, body ? "POST" : "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	r.rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type)
		r.type = strdup(type);
out:
	if (!r.body)
		r.body = strdup("");
	free(url);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return r;
}

void resp_free(struct resp *r)
{
	free(r->body);
	free(r->type);
	memset(r, 0, sizeof *r);
}

struct resp get(const char *path)
{
	struct resp r = http("GET", path, NULL, 0);

	ck_assert_msg(r.rc == CURLE_OK, "GET %s: %s", path, curl_easy_strerror(r.rc));
	return r;
}

/* GET path must answer status with exactly body. */
void expect(const char *path, long status, const char *body)
{
	struct resp r = get(path);

	ck_assert_msg(r.status == status, "GET %s: status %ld, not %ld; body: %s", path,
		r.status, status, r.body);
	ck_assert_str_eq(r.body, body);
	resp_free(&r);
}

static void *bg_main(void *arg)
{
	struct bg *b = arg;

	b->r = http("GET", b->path, NULL, 0);
	atomic_store(&b->done, true);
	return NULL;
}

void bg_start(struct bg *b, const char *path)
{
	memset(b, 0, sizeof *b);
	b->path = strdup(path);
	ck_assert_int_eq(pthread_create(&b->thread, NULL, bg_main, b), 0);
}

struct resp bg_join(struct bg *b)
{
	pthread_join(b->thread, NULL);
	free(b->path);
	ck_assert_msg(b->r.rc == CURLE_OK, "GET: %s", curl_easy_strerror(b->r.rc));
	return b->r;
}

/* The probe's path, held at the gate until gate_release(). */
char *gated(const char *path)
{
	char *p;

	ck_assert(asprintf(&p, "%s?gate=%s", path, gate_path) > 0);
	return p;
}

/* Wait until GET path answers body; false after WAIT_S. */
bool answers(const char *path, const char *body)
{
	for (int i = 0; i < WAIT_S * 1000; i++) {
		struct resp r = http("GET", path, NULL, 0);
		bool same = r.rc == CURLE_OK && r.status == 200 && strcmp(r.body, body) == 0;
		resp_free(&r);
		if (same)
			return true;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return false;
}

static int connect_to_server(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

bool server_refuses_connections(void)
{
	int fd = connect_to_server();

	if (fd >= 0)
		close(fd);
	return fd < 0 && errno == ECONNREFUSED;
}

int server_connect(void)
{
	int fd = connect_to_server();

	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	return fd;
}

bool closed_by_server(int fd, char *buf, size_t size)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char sink[256];
	size_t len = 0;

	if (!buf) {
		buf = sink;
		size = sizeof sink;
	}
	while (poll(&p, 1, WAIT_S * 1000) == 1) {
		ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
		if (n <= 0) {
			buf[len] = '\0';
			return n == 0 || errno == ECONNRESET;
		}
		if (buf == sink)
			continue; /* not kept */
		if ((len += (size_t)n) == size - 1)
			return false;
	}
	return false;
}

/* Run the server with args, its stdout and stderr in *out; its exit status. */
int capture(const char *const args[], char **out)
{
	const char *argv[16] = {SERVER};
	posix_spawn_file_actions_t fa;
	size_t argc = 1, len = 0;
	char buf[4096];
	ssize_t n;
	pid_t pid;
	int fds[2], status;

	for (; *args && argc < 15; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
	ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, fds[1], 1), 0);
	ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, fds[1], 2), 0);
	ck_assert_int_eq(posix_spawn(&pid, SERVER, &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	*out = NULL;
	while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		ck_assert_ptr_nonnull(*out = realloc(*out, len + (size_t)n + 1));
		memcpy(*out + len, buf, (size_t)n);
		len += (size_t)n;
		(*out)[len] = '\0';
	}
	close(fds[0]);
	if (!*out)
		*out = strdup("");
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
/* ---- JSON ------------------------------------------------------------------------ */

json_t *json_strict(const char *text, size_t len, json_error_t *err)
{
	return json_loadb(text, len, HTTPD_JSON_FLAGS, err);
}

double jnum(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	ck_assert_msg(json_is_number(v), "\"%s\" is not a number", key);
	return json_number_value(v);
}

const char *jstr(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	ck_assert_msg(json_is_string(v), "\"%s\" is not a string", key);
	return json_string_value(v);
}

static bool jbool(const json_t *obj, const char *key)
{
	return json_is_boolean(json_object_get(obj, key));
}

json_t *status_get(void)
{
	struct resp r = get("/_hotmod/status");
	json_error_t err;
	json_t *st, *mods, *m, *err_v, *vers, *v;
	size_t i, j;

	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(r.type);
	ck_assert_str_eq(r.type, "application/json");
	st = json_strict(r.body, r.len, &err);
	ck_assert_msg(st, "/_hotmod/status is not JSON: %s (byte %d)\n%s", err.text,
		err.position, r.body);
	resp_free(&r);
	ck_assert(json_is_object(st));
	jstr(st, "watch");
	ck_assert(jnum(st, "versions_alive") >= 0);
	ck_assert(jnum(st, "pinned") >= 0);
	ck_assert(jnum(st, "rescans") >= 0);
	ck_assert(json_is_array(mods = json_object_get(st, "modules")));
	json_array_foreach(mods, i, m) {
		ck_assert(json_is_object(m));
		jstr(m, "path");
		ck_assert(jbool(m, "global"));
		ck_assert(jnum(m, "current") >= 0);
		ck_assert(jnum(m, "loads") >= 0);
		ck_assert(jnum(m, "failures") >= 0);
		ck_assert(jnum(m, "pinned") >= 0);
		err_v = json_object_get(m, "last_error");
		ck_assert(json_is_null(err_v) || json_is_string(err_v));
		if (json_is_string(err_v)) {
			jstr(m, "last_error_msg");
			ck_assert(jnum(m, "last_error_time") > 0);
		}
		ck_assert(json_is_array(vers = json_object_get(m, "versions")));
		json_array_foreach(vers, j, v) {
			ck_assert(jnum(v, "version") >= 1);
			ck_assert(jnum(v, "refs") >= 0);
			ck_assert(jbool(v, "current"));
		}
	}
	return st;
}

json_t *module_of(const json_t *st, const char *path)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(st, "modules"), i, m)
		if (strcmp(jstr(m, "path"), path) == 0)
			return m;
	return NULL;
}

json_t *version_of(const json_t *m, double version)
{
	json_t *v;
	size_t j;

	json_array_foreach(json_object_get(m, "versions"), j, v)
		if (jnum(v, "version") == version)
			return v;
	return NULL;
}

/* ---- the served tree --------------------------------------------------------------- */

void install(const char *src, const char *rel)
{
	char *dst = at(www, rel);
	const char *argv[] = {"install", "-D", "-m", "644", src, dst, NULL};

	ck_assert_msg(run(argv) == 0, "install %s %s", src, dst);
	free(dst);
}

/* The built file with different bytes, as a rebuild makes it: the loader
 * skips content it has loaded already. */
char *rebuilt(const char *src, const char *name)
{
	char *dst = at(base, name);
	const char *cp[] = {"cp", src, dst, NULL};
	FILE *f;

	ck_assert_int_eq(run(cp), 0);
	ck_assert_ptr_nonnull(f = fopen(dst, "a"));
	fputs("rebuilt by check_httpd\n", f); /* after the last section: loads the same */
	ck_assert_int_eq(fclose(f), 0);
	return dst;
}

void httpd_setup(void)
{
	static const char *const samples[] = {"hello", "counter", "slow", "redirect", "greet"};
	static const char *const app[] = {"_global", "notes", "health"};
	static bool registered;
	char src[4096], rel[64];

	if (!registered) {
		atexit(at_exit);
		registered = true;
	}
	base = mkroot();
	www = at(base, "www");
	db_path = at(base, "notes.db");
	gate_path = at(base, "gate");
	ck_assert_int_eq(mkdir(www, 0755), 0);
	ck_assert_int_eq(mkfifo(gate_path, 0600), 0);
	for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
		snprintf(src, sizeof src, "%s/%s.so", SAMPLES, samples[i]);
		snprintf(rel, sizeof rel, "%s.so", samples[i]);
		install(src, rel);
	}
	for (size_t i = 0; have_app && i < sizeof app / sizeof *app; i++) {
		snprintf(src, sizeof src, "%s/%s.so", APP, app[i]);
		snprintf(rel, sizeof rel, "app/%s.so", app[i]);
		install(src, rel);
	}
	install(fixture("http_v1"), "probe.so");
}

void httpd_teardown(void)
{
	if (srv.pid) {
		int status = server_stop();
		ck_assert_msg(status == 0, "hotmod-httpd exited with %d", status);
	}
	rmroot(base);
	free(www);
	free(db_path);
	free(gate_path);
}

int httpd_main(const char *prog, Suite *(*suite)(void))
{
	/* Built only with --with-sqlite (the default); say so when skipped. */
	have_app = access(APP "/notes.so", R_OK) == 0;
	if (!have_app)
		fprintf(stderr, "%s: %s/notes.so not built: the notes app's tests "
				"are skipped\n", prog, APP);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "%s: curl_global_init failed\n", prog);
		return EXIT_FAILURE;
	}
	int rc = run_suite(suite(), CK_NORMAL);
	curl_global_cleanup();
	return rc;
}
