/* SPDX-License-Identifier: MIT */
/*
 * hotmod - check modules before they are deployed, and show what a running
 * hotmod-httpd has loaded.  See hotmod(1).
 *
 * "check" judges a file with libhotmod itself, not with a copy of its
 * rules: whatever the loader refuses, the check refuses, for the same
 * reason and in the same words.  It loads in a child process, so that a
 * module that crashes in init or fini takes only the child down.
 *
 * "status" is a small HTTP/1.0 client and a small JSON parser for the one
 * document hotmod-httpd serves at /_hotmod/status (server/status_json.c).
 * The answer is untrusted input: every size is bounded, every field is
 * checked before the table is printed, and text is printed as ASCII only.
 * A file name given to "check" may hold any byte too (a deploy script may
 * pass names it did not choose): it is printed escaped (loader/names.h).
 */
#include "config.h"

#include <hotmod.h>
#include <hotmod_module.h>

#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: hotmod check [-qK] [-g GLOBAL.so] [-k KIND] FILE.so...\n"
	"       hotmod status [URL]\n"
	"       hotmod --help | --version\n"
	"\n"
	"  check   load each FILE as hotmod-httpd would (a private copy, in a\n"
	"          child process), run its init and fini, and say whether it\n"
	"          would serve; exit 1 if any would not\n"
	"          -q  print failures only\n"
	"          -g  check each FILE under GLOBAL.so, its directory's global module\n"
	"          -k, --kind KIND  refuse a module built for another request kind\n"
	"              (hotmod-httpd serves hotmod-http/1)\n"
	"          -K, --require-kind  refuse a module that declares no kind too\n"
	"  status  show what a running hotmod-httpd has loaded\n"
	"          (URL default http://127.0.0.1:8080, path /_hotmod/status)\n";

/* Each command's options take --help too. */
static const struct option help_option[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};
static const struct option check_options[] = {
	{"help", no_argument, NULL, 'h'},
	{"kind", required_argument, NULL, 'k'},
	{"require-kind", no_argument, NULL, 'K'},
	{NULL, 0, NULL, 0},
};

/* The option getopt_long() just refused, as the user wrote it. */
static const char *bad_option(char **argv)
{
	static char shortopt[3] = "-?";

	if (optopt == 0) /* a long one */
		return argv[optind - 1];
	shortopt[1] = (char)optopt;
	return shortopt;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("hotmod: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'hotmod --help'.\n", stderr);
	return 2;
}

/* ==== hotmod check ========================================================== */

#define GLOBAL_NAME HM__GLOBAL_DEFAULT
/* hm_close() waits this long for references; the child holds none. */
#define CLOSE_TIMEOUT_MS 10000
/* A deploy script must not hang on a module whose init never returns. */
#define CHECK_TIMEOUT_S 60

/* One file to check, and where its copy lives while it is checked. */
struct check_job {
	const char *file;   /* as given */
	char shown[4 * PATH_MAX]; /* file as printed: escaped */
	const char *global; /* -g: the global module to check it under, or NULL */
	const char *kind;   /* -k: the request kind the embedder serves, or NULL */
	bool require_kind;  /* -K */
	bool quiet;
	bool is_global; /* the file itself is a global module */
	char root[PATH_MAX];
	char name[NAME_MAX + 1]; /* its name under root: "hello.so", "_global.so" */
	bool copied, global_copied;
};

/* What the child found, sent to the parent through a pipe in one write. */
struct check_result {
	int err;         /* 0 or an HM_E* code */
	unsigned hooks;  /* HOOK_BIT() of each hook a module's descriptor defines */
	char kind[HM_REQUEST_KIND_MAX + 1]; /* its request kind; "": none */
	char msg[1024];  /* the loader's message for err */
};

/* Bit i: the descriptor defines hook i (names.h: hm__hook_name). */
#define HOOK_BIT(i) (1u << (i))
#define HOOK_HANDLE 3

/*
 * Keep the file's own name where the loader would serve it under that name,
 * so that messages name it; anything else is checked as "module.so".
 */
static void choose_name(struct check_job *job)
{
	const char *base = strrchr(job->file, '/');
	int kind;

	base = base ? base + 1 : job->file;
	kind = hm__file_name_kind(base, strlen(base), GLOBAL_NAME);
	job->is_global = kind == HM__KEY_GLOBAL;
	if (kind == HM__KEY_GLOBAL || kind == HM__KEY_MODULE)
		snprintf(job->name, sizeof job->name, "%s", base);
	else
		snprintf(job->name, sizeof job->name, "module.so");
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read up to len bytes, stopping early only at end of file. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/*
 * Copy src to root/name, mode 0600: owned by us and writable by nobody
 * else, as the loader requires.  A FIFO or a device as src would block or
 * have side effects, so only a regular file is read.
 */
static int copy_in(const char *src, const char *root, const char *name, mode_t *mode)
{
	char dst[PATH_MAX], buf[65536], shown[4 * PATH_MAX];
	struct stat st;
	int in, out = -1, rc = -1;
	ssize_t n;

	hm__escape(shown, sizeof shown, src, strlen(src));
	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		fprintf(stderr, "%s: cannot open: %s\n", shown, strerror(errno));
		return -1;
	}
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s: %s: not a regular file\n", shown, hm_err_name(HM_ENOTREG));
		goto out;
	}
	*mode = st.st_mode;
	if ((size_t)snprintf(dst, sizeof dst, "%s/%s", root, name) >= sizeof dst) {
		errno = ENAMETOOLONG;
		goto sys_fail;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0 || fchmod(out, 0600) < 0) /* whatever the umask */
		goto sys_fail;
	while ((n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_all(out, buf, (size_t)n) < 0)
			goto sys_fail;
	}
	rc = 0;
	goto out;
sys_fail:
	fprintf(stderr, "%s: cannot copy to %s: %s\n", shown, dst, strerror(errno));
out:
	if (out >= 0 && close(out) < 0 && rc == 0) {
		fprintf(stderr, "%s: cannot copy to %s: %s\n", shown, dst, strerror(errno));
		rc = -1;
	}
	close(in);
	return rc;
}

/*
 * The copy is checked with safe permissions; the loader would refuse the
 * original's in a served directory (EUNSAFE), unless told to trust them.
 */
static void warn_writable(const char *file, mode_t mode)
{
	if (!(mode & (S_IWGRP | S_IWOTH)))
		return;
	fprintf(stderr, "%s: warning: %s (mode %04o): hotmod-httpd refuses it unless "
			"told to trust such files\n", file,
		mode & S_IWOTH ? "world-writable" : "group-writable", (unsigned)(mode & 07777));
}

static int make_root(struct check_job *job)
{
	const char *tmp = getenv("TMPDIR");
	mode_t mode;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(job->root, sizeof job->root, "%s/hotmod-check.XXXXXX", tmp) >=
		    sizeof job->root ||
		!mkdtemp(job->root)) { /* mode 0700: the loader checks the root too */
		fprintf(stderr, "%s: cannot make a temporary directory in %s: %s\n",
			job->shown, tmp, strerror(errno));
		job->root[0] = '\0';
		return -1;
	}
	if (copy_in(job->file, job->root, job->name, &mode) < 0)
		return -1;
	job->copied = true;
	if (!job->quiet)
		warn_writable(job->shown, mode);
	if (job->global && !job->is_global) {
		if (copy_in(job->global, job->root, GLOBAL_NAME, &mode) < 0)
			return -1;
		job->global_copied = true;
	}
	return 0;
}

static void remove_root(const struct check_job *job)
{
	char path[sizeof job->root + sizeof job->name + 1];

	if (!job->root[0])
		return;
	if (job->copied) {
		snprintf(path, sizeof path, "%s/%s", job->root, job->name);
		unlink(path);
	}
	if (job->global_copied) {
		snprintf(path, sizeof path, "%s/%s", job->root, GLOBAL_NAME);
		unlink(path);
	}
	if (rmdir(job->root) < 0)
		fprintf(stderr, "hotmod: cannot remove %s: %s\n", job->root, strerror(errno));
}

/* ---- in the child --------------------------------------------------------- */

static int set_error(struct check_result *r, int err, const char *msg)
{
	r->err = err;
	snprintf(r->msg, sizeof r->msg, "%s", msg);
	return err;
}

/*
 * The loader's warnings (a version that stays mapped after dlclose, say)
 * go to stderr as they come; its errors are in the status already.  One
 * write per line: the reaper thread may log too.
 */
static void child_log(void *arg, int level, const char *msg)
{
	const struct check_job *job = arg;
	char line[1536];
	int n;

	if (level != HM_LOG_WARN || job->quiet)
		return;
	n = snprintf(line, sizeof line, "%s: warning: %s\n", job->shown, msg);
	if (n > 0)
		write_all(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/*
 * Preloading loaded everything and recorded every failure in the status.
 * Our own file's failure first: a global's shows in its modules as EGLOBAL.
 */
static int read_status(hm_loader *l, const struct check_job *job, struct check_result *r)
{
	const struct hm_module_status *mine = NULL, *failed = NULL;
	struct hm_status *st;
	int rc;

	if ((rc = hm_status_get(l, &st)) < 0)
		return set_error(r, rc, hm_errmsg());
	for (size_t i = 0; i < st->nmodules; i++) {
		const struct hm_module_status *m = &st->modules[i];
		if (strcmp(m->path, job->name) == 0)
			mine = m;
		else if (m->last_error && !failed)
			failed = m;
	}
	if (mine && mine->last_error)
		rc = set_error(r, mine->last_error, mine->last_error_msg);
	else if (failed)
		rc = set_error(r, failed->last_error, failed->last_error_msg);
	else if (!mine || !mine->current)
		rc = set_error(r, HM_ENOENT, "the loader did not load it");
	hm_status_free(st);
	return rc;
}

/* Which hooks the descriptor defines, read as the loader reads it. */
static void read_hooks(hm_loader *l, const struct check_job *job, struct check_result *r)
{
	char path[NAME_MAX + 1];
	const struct hm_module_desc *d;
	struct hm_module_desc copy;
	hm_module *m;
	int rc;

	snprintf(path, sizeof path, "%.*s", (int)(strlen(job->name) - 3), job->name);
	if ((rc = hm_get(l, path, &m)) < 0) {
		set_error(r, rc, hm_errmsg());
		return;
	}
	if ((d = hm_module_symbol(m, HM_MODULE_SYMBOL)) == NULL) {
		set_error(r, HM_ENODESC, hm_errmsg());
	} else {
		/* An older module's descriptor is shorter: the rest is unset. */
		memset(&copy, 0, sizeof copy);
		memcpy(&copy, d, d->size < sizeof copy ? d->size : sizeof copy);
		const bool set[HM__HOOKS] = {copy.init, copy.fini, copy.prepare, copy.handle,
			copy.commit, copy.rollback, copy.release};
		for (unsigned i = 0; i < HM__HOOKS; i++)
			r->hooks |= set[i] ? HOOK_BIT(i) : 0;
		/* The loader checked it: a string of the module's, of the rule. */
		if (d->size >= offsetof(struct hm_module_desc, request_kind) +
				       sizeof copy.request_kind && copy.request_kind)
			snprintf(r->kind, sizeof r->kind, "%.*s", HM_REQUEST_KIND_MAX,
				copy.request_kind);
	}
	hm_put(m);
}

static void load_and_close(const struct check_job *job, struct check_result *r)
{
	struct hm_options opts;
	hm_loader *l;
	int rc;

	hm_options_init(&opts);
	opts.root = job->root;
	opts.watch = HM_WATCH_STAT; /* no inotify watches for a one-shot look */
	opts.check_interval_ms = HM_CHECK_NEVER;
	opts.flags = HM_OPEN_PRELOAD; /* load and init every file now */
	opts.log = child_log;
	opts.log_arg = (void *)job;
	opts.request_kind = job->kind;
	if (job->require_kind)
		opts.flags |= HM_OPEN_REQUIRE_KIND;
	if ((rc = hm_open(&l, &opts)) < 0) {
		set_error(r, rc, hm_errmsg());
		return;
	}
	if (read_status(l, job, r) == 0 && !job->is_global)
		read_hooks(l, job, r);
	/* fini runs here: a module that crashes in it is no good either. */
	if ((rc = hm_close(l, CLOSE_TIMEOUT_MS)) < 0 && r->err == 0)
		set_error(r, rc, hm_errmsg());
}

static void child_main(const struct check_job *job, int fd) __attribute__((noreturn));
static void child_main(const struct check_job *job, int fd)
{
	struct check_result r;

	memset(&r, 0, sizeof r);
	alarm(CHECK_TIMEOUT_S); /* SIGALRM's default action ends the child */
	load_and_close(job, &r);
	/* _exit: the parent's atexit handlers and stdio buffers are not ours. */
	_exit(write_all(fd, &r, sizeof r) < 0 ? 125 : 0);
}

/* ---- in the parent -------------------------------------------------------- */

static const char *signal_name(int sig, char *buf, size_t len)
{
	static const struct {
		int sig;
		const char *name;
	} names[] = {
		{SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"}, {SIGILL, "SIGILL"},
		{SIGFPE, "SIGFPE"}, {SIGABRT, "SIGABRT"}, {SIGTRAP, "SIGTRAP"},
		{SIGSYS, "SIGSYS"}, {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"},
		{SIGINT, "SIGINT"}, {SIGHUP, "SIGHUP"}, {SIGQUIT, "SIGQUIT"},
		{SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGXCPU, "SIGXCPU"},
		{SIGXFSZ, "SIGXFSZ"}, {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"},
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].sig == sig)
			return names[i].name;
	snprintf(buf, len, "signal %d", sig);
	return buf;
}

/*
 * A sanitizer's handler catches a fatal signal, reports it and exits with
 * a status instead: the signal is not seen here, so say where to look.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define SANITIZED_BUILD 1
#endif
#endif
#ifdef SANITIZED_BUILD
#define SANITIZER_NOTE " (a sanitizer build: a fatal signal becomes an exit status; " \
		       "see its report above)"
#else
#define SANITIZER_NOTE ""
#endif

/*
 * Run the child; 0 when it handed over a result, else -1 after saying how
 * it died.  A child that dies, or exits without a result (exit() in init,
 * or a sanitizer that turned a fatal signal into an exit status), crashed.
 */
static int run_child(const struct check_job *job, struct check_result *r)
{
	char buf[32];
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	/* Else the child's copy of unwritten output could be written twice. */
	fflush(stdout);
	fflush(stderr);
	if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		fprintf(stderr, "%s: cannot start a process to check it: %s\n", job->shown,
			strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(job, fds[1]);
	}
	close(fds[1]);
	n = read_full(fds[0], r, sizeof *r);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "%s: waitpid: %s\n", job->shown, strerror(errno));
			return -1;
		}
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
		fprintf(stderr, "%s: timed out: load, init and fini took more than %d s\n",
			job->shown, CHECK_TIMEOUT_S);
		return -1;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: crashed: %s during load, init or fini\n", job->shown,
			signal_name(WTERMSIG(status), buf, sizeof buf));
		return -1;
	}
	if (n != (ssize_t)sizeof *r) {
		fprintf(stderr, "%s: crashed: exited with status %d during load, init or "
				"fini%s\n", job->shown, WEXITSTATUS(status), SANITIZER_NOTE);
		return -1;
	}
	r->msg[sizeof r->msg - 1] = '\0';
	return 0;
}

static void print_ok(const struct check_job *job, const struct check_result *r)
{
	if (job->is_global) {
		printf("%s: ok: global module\n", job->shown);
		return;
	}
	/* The loader checked the kind: visible ASCII only. */
	printf("%s: ok: module, kind %s, hooks:", job->shown, r->kind[0] ? r->kind : "none");
	for (unsigned i = 0; i < HM__HOOKS; i++)
		if (r->hooks & HOOK_BIT(i))
			printf(" %s", hm__hook_name(i));
	if (!r->hooks)
		printf(" none");
	if (!(r->hooks & HOOK_BIT(HOOK_HANDLE)))
		printf(" (no handle: its directory's %s must have one)", GLOBAL_NAME);
	putchar('\n');
}

static bool check_file(const struct check_job *opts, const char *file)
{
	struct check_job job = {.file = file, .global = opts->global, .kind = opts->kind,
		.require_kind = opts->require_kind, .quiet = opts->quiet};
	struct check_result r;
	bool ok = false;

	hm__escape(job.shown, sizeof job.shown, file, strlen(file));
	choose_name(&job);
	if (make_root(&job) == 0 && run_child(&job, &r) == 0) {
		/* The loader's message is escaped already; escaping is idempotent. */
		char msg[4 * sizeof r.msg];
		hm__escape(msg, sizeof msg, r.msg, strlen(r.msg));
		if (r.err)
			fprintf(stderr, "%s: %s: %s\n", job.shown, hm_err_name(r.err), msg);
		else if (!job.quiet)
			print_ok(&job, &r);
		ok = r.err == 0;
	}
	remove_root(&job);
	return ok;
}

static int cmd_check(int argc, char **argv)
{
	static struct check_job opts; /* the options every file is checked with */
	bool ok = true;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:qg:k:Kh", check_options, NULL)) != -1) {
		switch (c) {
		case 'q':
			opts.quiet = true;
			break;
		case 'g':
			opts.global = optarg;
			break;
		case 'k':
			opts.kind = optarg;
			break;
		case 'K':
			opts.require_kind = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case ':':
			if (optopt == 'k' && strncmp(argv[optind - 1], "--", 2) == 0)
				return usage_error("check: --kind needs an argument");
			return usage_error("check: -%c needs an argument", optopt);
		default:
			return usage_error("check: unknown option %s", bad_option(argv));
		}
	}
	if (optind == argc)
		return usage_error("check: no FILE.so given");
	for (int i = optind; i < argc; i++)
		ok &= check_file(&opts, argv[i]);
	return ok ? 0 : 1;
}

/* ==== hotmod status: HTTP ===================================================== */

#define DEFAULT_URL "http://127.0.0.1:8080"
#define STATUS_PATH "/_hotmod/status"
#define CONNECT_TIMEOUT_MS 5000
#define REQUEST_TIMEOUT_MS 10000
#define MAX_RESPONSE (8u << 20)

struct url {
	char host[256];
	char port[6];
	char path[1024];
	bool ipv6; /* the host was written [like:this] */
};

/* Bytes allowed in a host or path we put into a request line. */
static bool url_chars_ok(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			    (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

static int parse_port(const char *s, size_t len, struct url *u)
{
	unsigned long port = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	if (port == 0 || port > 65535)
		return -1;
	snprintf(u->port, sizeof u->port, "%lu", port);
	return 0;
}

/* host part: "name", "1.2.3.4" or "[::1]"; returns what follows it. */
static const char *parse_host(const char *s, struct url *u)
{
	const char *end;

	if (*s == '[') {
		if (!(end = strchr(s, ']')))
			return NULL;
		u->ipv6 = true;
		s++;
	} else {
		end = s + strcspn(s, ":/");
	}
	if (end == s || (size_t)(end - s) >= sizeof u->host)
		return NULL;
	memcpy(u->host, s, (size_t)(end - s));
	u->host[end - s] = '\0';
	if (!url_chars_ok(u->host, u->ipv6 ? ":.%" : ".-_"))
		return NULL;
	return u->ipv6 ? end + 1 : end;
}

/* http://HOST[:PORT][/PATH]; the scheme may be left out. */
static int parse_url(const char *s, struct url *u)
{
	const char *rest = strstr(s, "://");
	size_t plen;

	memset(u, 0, sizeof *u);
	snprintf(u->port, sizeof u->port, "80");
	if (rest && strncasecmp(s, "http://", 7) != 0) {
		fprintf(stderr, "hotmod: status: %s: only http:// URLs are supported\n", s);
		return -1;
	}
	rest = rest ? rest + 3 : s;
	if (!(rest = parse_host(rest, u)))
		goto bad;
	if (*rest == ':') {
		plen = strcspn(rest + 1, "/");
		if (parse_port(rest + 1, plen, u) < 0)
			goto bad;
		rest += 1 + plen;
	}
	if (*rest == '\0' || strcmp(rest, "/") == 0)
		rest = STATUS_PATH;
	if (*rest != '/' || strlen(rest) >= sizeof u->path ||
		!url_chars_ok(rest, "/._-~%?&=+:@!$*,;'()"))
		goto bad;
	snprintf(u->path, sizeof u->path, "%s", rest);
	return 0;
bad:
	fprintf(stderr, "hotmod: status: %s: not a URL of the form http://HOST[:PORT][/PATH]\n",
		s);
	return -1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll one fd until deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		int64_t left = deadline - now_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : n;
	}
}

/* Non-blocking connect to one address, waiting at most CONNECT_TIMEOUT_MS. */
static int connect_one(const struct addrinfo *ai, int *err)
{
	int fd, soerr = 0;
	socklen_t len = sizeof soerr;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		ai->ai_protocol);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*err = errno;
	} else if (wait_fd(fd, POLLOUT, now_ms() + CONNECT_TIMEOUT_MS) != 1) {
		*err = ETIMEDOUT;
	} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		*err = soerr ? soerr : errno;
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

static int http_connect(const struct url *u)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV};
	struct addrinfo *ais;
	int rc, fd = -1, err = 0;

	if ((rc = getaddrinfo(u->host, u->port, &hints, &ais)) != 0) {
		fprintf(stderr, "hotmod: status: %s: %s\n", u->host, gai_strerror(rc));
		return -1;
	}
	for (const struct addrinfo *ai = ais; ai && fd < 0; ai = ai->ai_next)
		fd = connect_one(ai, &err);
	freeaddrinfo(ais);
	if (fd < 0)
		fprintf(stderr, "hotmod: status: cannot reach %s%s%s port %s: %s\n",
			u->ipv6 ? "[" : "", u->host, u->ipv6 ? "]" : "", u->port,
			strerror(err));
	return fd;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		int w = wait_fd(fd, POLLOUT, deadline);
		if (w != 1) {
			errno = w == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read to end of file: HTTP/1.0 without keep-alive ends the body so. */
static char *recv_all(int fd, size_t *len, int64_t deadline)
{
	size_t cap = 16384, n = 0;
	char *buf = malloc(cap + 1), *p;

	while (buf) {
		if (n == cap) {
			if (cap >= MAX_RESPONSE) {
				fprintf(stderr, "hotmod: status: answer larger than %u bytes\n",
					MAX_RESPONSE);
				break;
			}
			if (!(p = realloc(buf, cap * 2 + 1)))
				break;
			buf = p;
			cap *= 2;
		}
		int w = wait_fd(fd, POLLIN, deadline);
		ssize_t got = w == 1 ? recv(fd, buf + n, cap - n, 0) : -1;
		if (got < 0 && w == 1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0) {
			fprintf(stderr, "hotmod: status: reading the answer: %s\n",
				w == 0 ? "timed out" : strerror(errno));
			break;
		}
		if (got == 0) {
			buf[n] = '\0'; /* so that the parsers can never run off the end */
			*len = n;
			return buf;
		}
		n += (size_t)got;
	}
	free(buf);
	return NULL;
}

static char *http_get(const struct url *u, size_t *len)
{
	int64_t deadline = now_ms() + REQUEST_TIMEOUT_MS;
	char req[2048];
	char *resp = NULL;
	int fd, n;

	n = snprintf(req, sizeof req,
		"GET %s HTTP/1.0\r\nHost: %s%s%s:%s\r\nUser-Agent: hotmod/%s\r\n"
		"Accept: application/json\r\nConnection: close\r\n\r\n",
		u->path, u->ipv6 ? "[" : "", u->host, u->ipv6 ? "]" : "", u->port,
		PACKAGE_VERSION);
	if (n < 0 || (size_t)n >= sizeof req)
		return NULL;
	if ((fd = http_connect(u)) < 0)
		return NULL;
	if (send_all(fd, req, (size_t)n, deadline) < 0)
		fprintf(stderr, "hotmod: status: sending the request: %s\n", strerror(errno));
	else
		resp = recv_all(fd, len, deadline);
	close(fd);
	return resp;
}

/* Printable ASCII or '?': answers are untrusted and go to a terminal. */
static void sanitize(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			s[i] = '?';
}

/* The value of header name in the block [h, end), or NULL. */
static const char *header(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);

	while (h < end) {
		const char *eol = memchr(h, '\n', (size_t)(end - h));
		if (!eol)
			eol = end;
		if ((size_t)(eol - h) > nlen && strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
			const char *v = h + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			while (*vlen > 0 && (v[*vlen - 1] == '\r' || v[*vlen - 1] == ' '))
				(*vlen)--;
			return v;
		}
		h = eol + 1;
	}
	return NULL;
}

/*
 * Check the status line and the framing, and find the body.  hotmod-httpd
 * answers an HTTP/1.0 request with a plain body, perhaps with a length.
 */
static char *http_body(char *resp, size_t len, size_t *blen)
{
	char *hend = strstr(resp, "\r\n\r\n"), *body, *eol;
	const char *v;
	size_t vlen;

	if (len < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || resp[8] != ' ') {
		fputs("hotmod: status: the answer is not HTTP\n", stderr);
		return NULL;
	}
	if (!hend) {
		fputs("hotmod: status: the answer ends inside its headers\n", stderr);
		return NULL;
	}
	body = hend + 4;
	if (strncmp(resp + 9, "200 ", 4) != 0 && strncmp(resp + 9, "200\r", 4) != 0) {
		eol = strchr(resp, '\r');
		sanitize(resp, (size_t)(eol - resp));
		fprintf(stderr, "hotmod: status: the server answered \"%.*s\", not 200 OK: "
				"is it hotmod-httpd?\n", (int)(eol - resp > 80 ? 80 : eol - resp), resp);
		return NULL;
	}
	if ((v = header(resp, hend, "Transfer-Encoding", &vlen)) &&
		!(vlen == 8 && strncasecmp(v, "identity", 8) == 0)) {
		fputs("hotmod: status: the answer uses a transfer encoding; expected a plain "
		      "body\n", stderr);
		return NULL;
	}
	*blen = len - (size_t)(body - resp);
	if ((v = header(resp, hend, "Content-Length", &vlen))) {
		char *end;
		errno = 0;
		unsigned long long cl = strtoull(v, &end, 10);
		if (end != v + vlen || vlen == 0 || *v == '-' || errno || cl > *blen) {
			fputs("hotmod: status: the answer is shorter than its Content-Length, "
			      "or the length is not a number\n", stderr);
			return NULL;
		}
		*blen = (size_t)cl;
		body[*blen] = '\0';
	}
	return body;
}

/* ==== hotmod status: JSON ===================================================== */

/*
 * A JSON tree whose strings point into the answer's buffer, decoded in
 * place (a decoded string is never longer than its escaped form), so that
 * the tree costs one node per value.  Limits keep a hostile answer from
 * costing more than a few tens of MiB or recursing deeply.
 */
#define JSON_MAX_DEPTH 32
#define JSON_MAX_VALUES (1u << 20)

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool b;
	char *key; /* as a member of an object */
	char *s;   /* J_STR: decoded, NUL-terminated; J_NUM: the text */
	size_t len;      /* of s */
	size_t n;        /* J_ARR, J_OBJ: members */
	struct jval *items;
};

struct jparser {
	char *p, *start, *end;
	int depth;
	size_t values;
	const char *err;
};

static void jfree(struct jval *v)
{
	for (size_t i = 0; i < v->n; i++)
		jfree(&v->items[i]);
	free(v->items);
	v->items = NULL;
	v->n = 0;
}

static int jfail(struct jparser *jp, const char *why)
{
	if (!jp->err)
		jp->err = why;
	return -1;
}

static void jskip_ws(struct jparser *jp)
{
	while (jp->p < jp->end &&
		(*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int jhex4(const char *p, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
			     c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) :
			     c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
		if (d == 16)
			return -1;
		*out = *out << 4 | d;
	}
	return 0;
}

static char *jput_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* \uXXXX at jp->p (after the backslash-u), a surrogate pair joined. */
static int jescape_u(struct jparser *jp, unsigned *cp)
{
	unsigned lo;

	if (jp->end - jp->p < 4 || jhex4(jp->p, cp) < 0)
		return jfail(jp, "bad \\u escape");
	jp->p += 4;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return jfail(jp, "lone low surrogate in \\u escape");
	if (*cp >= 0xd800 && *cp <= 0xdbff) {
		if (jp->end - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u' ||
			jhex4(jp->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return jfail(jp, "lone high surrogate in \\u escape");
		jp->p += 6;
		*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (*cp == 0)
		return jfail(jp, "NUL character in a string");
	return 0;
}

static int jstring(struct jparser *jp, char **s, size_t *len)
{
	static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
	char *o = ++jp->p; /* decoded bytes overwrite the escaped ones */
	unsigned cp;

	*s = o;
	for (;;) {
		if (jp->p >= jp->end)
			return jfail(jp, "unterminated string");
		unsigned char c = (unsigned char)*jp->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return jfail(jp, "control character in a string");
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		if (jp->p >= jp->end)
			return jfail(jp, "unterminated string");
		c = (unsigned char)*jp->p++;
		const char *e = c ? strchr(esc_in, c) : NULL;
		if (e) {
			*o++ = esc_out[e - esc_in];
		} else if (c == 'u') {
			if (jescape_u(jp, &cp) < 0)
				return -1;
			o = jput_utf8(o, cp);
		} else {
			return jfail(jp, "bad escape in a string");
		}
	}
	*len = (size_t)(o - *s);
	*o = '\0'; /* at most where the closing quote was */
	return 0;
}

static size_t jdigits(struct jparser *jp)
{
	size_t n = 0;

	while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
		jp->p++;
		n++;
	}
	return n;
}

/* RFC 8259's grammar; the text is kept and converted where it is used. */
static int jnumber(struct jparser *jp, struct jval *v)
{
	char *start = jp->p;

	if (jp->p < jp->end && *jp->p == '-')
		jp->p++;
	if (jp->p < jp->end && *jp->p == '0')
		jp->p++;
	else if (jdigits(jp) == 0)
		return jfail(jp, "bad number");
	if (jp->p < jp->end && *jp->p == '.') {
		jp->p++;
		if (jdigits(jp) == 0)
			return jfail(jp, "bad number");
	}
	if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
		jp->p++;
		if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
			jp->p++;
		if (jdigits(jp) == 0)
			return jfail(jp, "bad number");
	}
	v->type = J_NUM;
	v->s = start;
	v->len = (size_t)(jp->p - start);
	return 0;
}

static int jliteral(struct jparser *jp, struct jval *v)
{
	static const struct {
		const char *word;
		enum jtype type;
		bool b;
	} words[] = {{"true", J_BOOL, true}, {"false", J_BOOL, false}, {"null", J_NULL, false}};

	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		size_t n = strlen(words[i].word);
		if ((size_t)(jp->end - jp->p) >= n && memcmp(jp->p, words[i].word, n) == 0) {
			jp->p += n;
			v->type = words[i].type;
			v->b = words[i].b;
			return 0;
		}
	}
	return jfail(jp, "unexpected character");
}

static int jvalue(struct jparser *jp, struct jval *v);

/* One more member of an array or object, the array grown as needed. */
static struct jval *jappend(struct jparser *jp, struct jval *v, size_t *cap)
{
	if (v->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct jval *items = realloc(v->items, ncap * sizeof *items);
		if (!items) {
			jfail(jp, "out of memory");
			return NULL;
		}
		v->items = items;
		*cap = ncap;
	}
	memset(&v->items[v->n], 0, sizeof v->items[0]);
	return &v->items[v->n++];
}

/* [ ... ] or { ... }: members separated by commas. */
static int jcontainer(struct jparser *jp, struct jval *v, bool object)
{
	char closer = object ? '}' : ']';
	size_t cap = 0;

	v->type = object ? J_OBJ : J_ARR;
	jp->p++;
	jskip_ws(jp);
	if (jp->p < jp->end && *jp->p == closer) {
		jp->p++;
		return 0;
	}
	for (;;) {
		struct jval *item = jappend(jp, v, &cap);
		if (!item)
			return -1;
		if (object) {
			size_t klen;
			if (jp->p >= jp->end || *jp->p != '"')
				return jfail(jp, "expected a member name");
			if (jstring(jp, &item->key, &klen) < 0)
				return -1;
			jskip_ws(jp);
			if (jp->p >= jp->end || *jp->p++ != ':')
				return jfail(jp, "expected ':'");
		}
		if (jvalue(jp, item) < 0)
			return -1;
		jskip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			jskip_ws(jp);
			continue;
		}
		if (jp->p < jp->end && *jp->p == closer) {
			jp->p++;
			return 0;
		}
		return jfail(jp, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int jvalue(struct jparser *jp, struct jval *v)
{
	int rc;

	jskip_ws(jp);
	if (jp->p >= jp->end)
		return jfail(jp, "unexpected end");
	if (++jp->values > JSON_MAX_VALUES)
		return jfail(jp, "too many values");
	switch (*jp->p) {
	case '{':
	case '[':
		if (++jp->depth > JSON_MAX_DEPTH)
			return jfail(jp, "nested too deeply");
		rc = jcontainer(jp, v, *jp->p == '{');
		jp->depth--;
		return rc;
	case '"':
		v->type = J_STR;
		return jstring(jp, &v->s, &v->len);
	default:
		if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9'))
			return jnumber(jp, v);
		return jliteral(jp, v);
	}
}

/* Parse [text, text + len) in place; on failure say where and why. */
static int json_parse(char *text, size_t len, struct jval *root)
{
	struct jparser jp = {.p = text, .start = text, .end = text + len};

	memset(root, 0, sizeof *root);
	if (jvalue(&jp, root) == 0) {
		jskip_ws(&jp);
		if (jp.p == jp.end)
			return 0;
		jfail(&jp, "text after the document");
	}
	fprintf(stderr, "hotmod: status: the answer is not a status document: not valid "
			"JSON (%s at byte %zu)\n", jp.err, (size_t)(jp.p - jp.start));
	jfree(root);
	return -1;
}

/* ==== hotmod status: the document ============================================= */

struct vstat {
	uint64_t version, refs;
	bool current;
};

struct mstat {
	const char *path, *err, *msg; /* err, msg: NULL when none */
	uint64_t current, loads, failures, pinned;
	size_t nver;
	struct vstat *ver;
};

struct sstat {
	const char *watch;
	uint64_t alive, pinned, rescans;
	size_t nmod;
	struct mstat *mod;
};

static const struct jval *jmember(const struct jval *obj, const char *key)
{
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->items[i].key, key) == 0)
			return &obj->items[i];
	return NULL;
}

/* obj.key of type t, or NULL after saying what is wrong; where: "modules[2]". */
static const struct jval *field(const struct jval *obj, const char *where, const char *key,
	enum jtype t)
{
	static const char *const tnames[] = {"null", "true or false", "a number",
		"a string", "an array", "an object"};
	const struct jval *v = jmember(obj, key);

	if (!v || v->type != t) {
		fprintf(stderr, "hotmod: status: unexpected answer: %s%s%s %s %s\n", where,
			*where ? "." : "", key, v ? "is not" : "is missing, expected",
			tnames[t]);
		return NULL;
	}
	return v;
}

static bool field_u64(const struct jval *obj, const char *where, const char *key,
	uint64_t *out)
{
	const struct jval *v = field(obj, where, key, J_NUM);
	char digits[24];
	char *end;

	if (!v)
		return false;
	if (v->len < sizeof digits && v->s[0] != '-') {
		memcpy(digits, v->s, v->len);
		digits[v->len] = '\0';
		errno = 0;
		*out = strtoull(digits, &end, 10);
		if (end == digits + v->len && errno == 0)
			return true;
	}
	fprintf(stderr, "hotmod: status: unexpected answer: %s%s%s is not a count\n", where,
		*where ? "." : "", key);
	return false;
}

static bool get_versions(const struct jval *arr, const char *where, struct mstat *m)
{
	char at[96];

	if (!(m->ver = calloc(arr->n ? arr->n : 1, sizeof *m->ver)))
		return false;
	m->nver = arr->n;
	for (size_t i = 0; i < arr->n; i++) {
		const struct jval *o = &arr->items[i], *cur;
		snprintf(at, sizeof at, "%s.versions[%zu]", where, i);
		if (o->type != J_OBJ) {
			fprintf(stderr, "hotmod: status: unexpected answer: %s is not an object\n", at);
			return false;
		}
		if (!field_u64(o, at, "version", &m->ver[i].version) ||
			!field_u64(o, at, "refs", &m->ver[i].refs) ||
			!(cur = field(o, at, "current", J_BOOL)))
			return false;
		m->ver[i].current = cur->b;
	}
	return true;
}

static bool get_module(const struct jval *o, size_t i, struct mstat *m)
{
	const struct jval *v;
	char at[64];

	snprintf(at, sizeof at, "modules[%zu]", i);
	if (o->type != J_OBJ) {
		fprintf(stderr, "hotmod: status: unexpected answer: %s is not an object\n", at);
		return false;
	}
	if (!(v = field(o, at, "path", J_STR)))
		return false;
	m->path = v->s;
	if (!field_u64(o, at, "current", &m->current) || !field_u64(o, at, "loads", &m->loads) ||
		!field_u64(o, at, "failures", &m->failures) ||
		!field_u64(o, at, "pinned", &m->pinned))
		return false;
	v = jmember(o, "last_error");
	if (v && v->type == J_STR) {
		m->err = v->s;
		if (!(v = field(o, at, "last_error_msg", J_STR)))
			return false;
		m->msg = v->s;
	} else if (!v || v->type != J_NULL) {
		fprintf(stderr, "hotmod: status: unexpected answer: %s.last_error is not "
				"null or a string\n", at);
		return false;
	}
	return (v = field(o, at, "versions", J_ARR)) && get_versions(v, at, m);
}

static void sstat_free(struct sstat *st)
{
	for (size_t i = 0; i < st->nmod; i++)
		free(st->mod[i].ver);
	free(st->mod);
}

static bool get_status(const struct jval *root, struct sstat *st)
{
	const struct jval *v, *mods;

	memset(st, 0, sizeof *st);
	if (root->type != J_OBJ) {
		fputs("hotmod: status: unexpected answer: not a JSON object\n", stderr);
		return false;
	}
	if (!(v = field(root, "", "watch", J_STR)) ||
		!field_u64(root, "", "versions_alive", &st->alive) ||
		!field_u64(root, "", "pinned", &st->pinned) ||
		!field_u64(root, "", "rescans", &st->rescans) ||
		!(mods = field(root, "", "modules", J_ARR)))
		return false;
	sanitize(v->s, v->len);
	st->watch = v->s;
	if (!(st->mod = calloc(mods->n ? mods->n : 1, sizeof *st->mod))) {
		fputs("hotmod: status: out of memory\n", stderr);
		return false;
	}
	for (size_t i = 0; i < mods->n; i++) {
		st->nmod = i + 1; /* so that sstat_free frees what is filled */
		if (!get_module(&mods->items[i], i, &st->mod[i]))
			return false;
	}
	return true;
}

/* ==== hotmod status: the table ================================================ */

#define MAX_SHOWN_VERSIONS 8
#define MIN_ERROR_WIDTH 20

enum { C_PATH, C_CURRENT, C_VERSIONS, C_LOADS, C_FAILURES, C_PINNED, C_ERROR, NCOLS };

static const char *const col_names[NCOLS] = {
	"PATH", "CURRENT", "VERSIONS", "LOADS", "FAILURES", "PINNED", "LAST ERROR",
};

struct row {
	char *cell[NCOLS];
};

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/* "v2(0) v1(3)": each version alive and the references in flight on it. */
static char *versions_cell(const struct mstat *m)
{
	size_t shown = m->nver < MAX_SHOWN_VERSIONS ? m->nver : MAX_SHOWN_VERSIONS;
	size_t cap = shown * 48 + 32, off = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < shown; i++)
		off += (size_t)snprintf(s + off, cap - off, "%sv%llu(%llu)", i ? " " : "",
			(unsigned long long)m->ver[i].version,
			(unsigned long long)m->ver[i].refs);
	if (m->nver > shown)
		snprintf(s + off, cap - off, " +%zu more", m->nver - shown);
	else if (m->nver == 0)
		snprintf(s, cap, "-");
	return s;
}

static bool make_row(const struct mstat *m, struct row *r)
{
	r->cell[C_PATH] = xprintf("%s", m->path);
	r->cell[C_CURRENT] = m->current ? xprintf("v%llu", (unsigned long long)m->current) :
					  xprintf("-");
	r->cell[C_VERSIONS] = versions_cell(m);
	r->cell[C_LOADS] = xprintf("%llu", (unsigned long long)m->loads);
	r->cell[C_FAILURES] = xprintf("%llu", (unsigned long long)m->failures);
	r->cell[C_PINNED] = xprintf("%llu", (unsigned long long)m->pinned);
	r->cell[C_ERROR] = m->err ? xprintf("%s: %s", m->err, m->msg) : xprintf("-");
	for (int c = 0; c < NCOLS; c++) {
		if (!r->cell[c])
			return false;
		sanitize(r->cell[c], strlen(r->cell[c]));
	}
	return true;
}

static size_t term_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col)
		return ws.ws_col;
	if (cols && atoi(cols) > 0)
		return (size_t)atoi(cols);
	return 120;
}

static void print_row(const char *const cell[NCOLS], const size_t width[NCOLS], size_t errw)
{
	for (int c = 0; c < C_ERROR; c++)
		printf(c >= C_LOADS && c <= C_PINNED ? "%*s  " : "%-*s  ", (int)width[c], cell[c]);
	if (strlen(cell[C_ERROR]) <= errw)
		printf("%s\n", cell[C_ERROR]);
	else
		printf("%.*s...\n", (int)(errw - 3), cell[C_ERROR]);
}

static void print_table(struct row *rows, size_t n)
{
	size_t width[NCOLS], used = 0, cols = term_width(), errw;

	for (int c = 0; c < NCOLS; c++) {
		width[c] = strlen(col_names[c]);
		for (size_t i = 0; i < n; i++)
			if (strlen(rows[i].cell[c]) > width[c])
				width[c] = strlen(rows[i].cell[c]);
		if (c != C_ERROR)
			used += width[c] + 2;
	}
	errw = cols > used + MIN_ERROR_WIDTH ? cols - used : MIN_ERROR_WIDTH;
	print_row(col_names, width, errw);
	for (size_t i = 0; i < n; i++)
		print_row((const char *const *)rows[i].cell, width, errw);
}

static int print_status(struct sstat *st)
{
	struct row *rows = calloc(st->nmod ? st->nmod : 1, sizeof *rows);
	bool ok = rows != NULL;

	printf("watch %s, %zu module%s, %llu version%s alive, %llu pinned, %llu rescan%s\n",
		st->watch, st->nmod, st->nmod == 1 ? "" : "s",
		(unsigned long long)st->alive, st->alive == 1 ? "" : "s",
		(unsigned long long)st->pinned, (unsigned long long)st->rescans,
		st->rescans == 1 ? "" : "s");
	for (size_t i = 0; ok && i < st->nmod; i++)
		ok = make_row(&st->mod[i], &rows[i]);
	if (ok && st->nmod)
		print_table(rows, st->nmod);
	for (size_t i = 0; rows && i < st->nmod; i++)
		for (int c = 0; c < NCOLS; c++)
			free(rows[i].cell[c]);
	free(rows);
	if (!ok)
		fputs("hotmod: status: out of memory\n", stderr);
	return ok ? 0 : 1;
}

static int show_status(const char *url_text)
{
	struct url u;
	struct jval root = {0};
	struct sstat st = {0};
	char *resp, *body;
	size_t len, blen;
	int rc = 1;

	if (parse_url(url_text, &u) < 0)
		return 2;
	if (!(resp = http_get(&u, &len)))
		return 1;
	if ((body = http_body(resp, len, &blen)) && json_parse(body, blen, &root) == 0) {
		if (get_status(&root, &st))
			rc = print_status(&st);
		sstat_free(&st);
		jfree(&root);
	}
	free(resp);
	return rc;
}

static int cmd_status(int argc, char **argv)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", help_option, NULL)) != -1) {
		if (c != 'h')
			return usage_error("status: unknown option %s", bad_option(argv));
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc - optind > 1)
		return usage_error("status: one URL at most");
	return show_status(optind < argc ? argv[optind] : DEFAULT_URL);
}

/* ==== main ======================================================================= */

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	int rc;

	if (!cmd)
		return usage_error("no command given");
	if (strcmp(cmd, "check") == 0) {
		rc = cmd_check(argc - 1, argv + 1);
	} else if (strcmp(cmd, "status") == 0) {
		rc = cmd_status(argc - 1, argv + 1);
	} else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
		   strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		rc = 0;
	} else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("hotmod %s (libhotmod %s)\n", PACKAGE_VERSION, hm_version_string());
		rc = 0;
	} else {
		return usage_error("unknown command '%s'", cmd);
	}
	/* A full disk or a closed pipe must not pass for success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "hotmod: writing the output: %s\n", strerror(errno));
		return 1;
	}
	return rc;
}
