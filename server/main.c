/* SPDX-License-Identifier: MIT */
/*
 * hotmod-httpd - serve URL paths from shared objects under a directory, and
 * reload them when a new one is dropped in.  See hotmod-httpd(8).
 *
 * By default a master process binds the socket and runs worker processes
 * (master.c), each serving with its own loader; --workers 0 serves in this
 * one process.  Signals are blocked in every thread and taken with
 * sigwait(2) where one process serves: SIGHUP rescans the tree; SIGTERM
 * and SIGINT stop accepting, let the requests in flight finish within the
 * grace (those that do not are abandoned, and logged), finalise every
 * module and exit 0.
 */
#include "server.h"

#include "names.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: hotmod-httpd --root DIR [options]\n"
	"\n"
	"Serve URL path /a/b from DIR/a/b.so (with DIR/a/_global.so around it),\n"
	"reloading modules when their files change.\n"
	"\n"
	"  -r, --root DIR          directory of modules (required)\n"
	"  -l, --listen ADDR:PORT  address to listen on (default 127.0.0.1:8080;\n"
	"                          [::1]:8080 for IPv6, port 0 for any free port)\n"
	"  -W, --workers N         serve from N worker processes (default: one per\n"
	"                          CPU); 0: serve in this one process\n"
	"      --max-restarts N    stop when more than N workers died within\n"
	"      --restart-period S  S seconds (default: 10 within 60)\n"
	"  -t, --threads N         run at most N handlers at once per process\n"
	"                          (default 16), on N + 1 threads\n"
	"      --max-connections N connections open at once, per process (default\n"
	"                          16384, or what the descriptor limit allows)\n"
	"      --header-timeout S  close a connection that has not sent a whole\n"
	"                          request head S seconds after it connected or was\n"
	"                          last answered (default 10)\n"
	"      --idle-timeout S    close a connection on which nothing moved for S\n"
	"                          seconds while a request is read or answered\n"
	"                          (default 60)\n"
	"      --queue-timeout S   answer 503 to a request that waited S seconds for\n"
	"                          a handler thread (default 5)\n"
	"      --request-timeout S answer 503 to a request whose handler runs longer\n"
	"                          than S seconds (default 30); the handler goes on\n"
	"      --harakiri S        replace a worker whose handler runs longer than\n"
	"                          S seconds (default 60; 0: never)\n"
	"      --inline-handlers   run handlers on the connection loop, as Kore does:\n"
	"                          faster, but a handler that blocks holds up every\n"
	"                          connection of its worker, and --request-timeout\n"
	"                          waits for it to return\n"
	"  -w, --watch MODE        auto, inotify or stat (default auto: inotify, or\n"
	"                          stat checks where the file system gives no events)\n"
	"  -i, --check-interval MS with --watch stat: stat a module at most this\n"
	"                          often (default 1000)\n"
	"  -g, --grace MS          on SIGTERM, wait this long for requests in flight\n"
	"                          and module references (default 10000)\n"
	"      --lazy              load modules on their first request, not at start\n"
	"      --no-probe          do not have the dynamic linker load each new file\n"
	"                          in a process of its own first (saves about 2 ms\n"
	"                          a load; a corrupt file may then crash the server)\n"
	"      --state-dir DIR     keep the builds that served and those quarantined\n"
	"                          in DIR, across restarts (default: a directory\n"
	"                          of its own, removed at exit)\n"
	"      --good-after S      a build that served S seconds without crashing a\n"
	"                          worker can stand in for a later one that does\n"
	"                          (default 10)\n"
	"      --canary            serve a new build of a module in worker 1 only,\n"
	"                          the last-known-good in the others, until it has\n"
	"      --canary-requests N served N requests (default 100) or for\n"
	"      --canary-time S     S seconds (default 60); then promote it, or\n"
	"                          revert and quarantine it if more of its requests\n"
	"                          failed (5xx) than of the last-known-good's\n"
	"  -u, --user NAME         run the workers as user NAME (the master binds as\n"
	"                          root and runs no module)\n"
	"      --allow-root        serve as root without --user\n"
	"      --require-kind      refuse modules that do not declare the request\n"
	"                          kind " HM_HTTP_KIND " (default: those that declare\n"
	"                          none load; those built for another kind never do)\n"
	"  -q, --quiet             no access log\n"
	"  -v, --verbose           log debug messages of the loader too\n"
	"  -h, --help              this text\n"
	"  -V, --version           the version\n"
	"\n"
	"GET /_hotmod/status returns the status of the worker that answers, as JSON.\n"
	"SIGHUP rescans DIR; SIGTERM or SIGINT stops gracefully.\n";

bool srv_verbose;

/*
 * Every line is escaped (loader/names.h): its arguments may hold a file
 * name, a module's message or a client's bytes, and a newline there must
 * not forge a line, nor ESC drive the operator's terminal.
 */
void srv_log(const char *level, const char *fmt, ...)
{
	char raw[1024], msg[2 * sizeof raw], when[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	hm__escape(msg, sizeof msg, raw, strlen(raw));
	/* One write per line, so that lines from threads never interleave. */
	if (srv_worker_id)
		fprintf(stderr, "%s worker %u %s: %s\n", when, srv_worker_id, level, msg);
	else
		fprintf(stderr, "%s %s: %s\n", when, level, msg);
}

void srv_loader_log(void *arg, int level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)arg;
	if (level < HM_LOG_DEBUG || srv_verbose)
		srv_log(names[level & 3], "%s", msg);
}

/* What one serving process needs. */
struct config {
	struct srv s;
	struct hm_options opts;
	const char *root, *listen;
	long grace;
	const char *user; /* --user: the serving processes become it */
	uid_t uid;
	gid_t gid;
};

/* In the serving process, before any module: become --user for good. */
static int drop_privileges(const struct config *c)
{
	if (!c->user)
		return 0;
	if (initgroups(c->user, c->gid) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0) {
		srv_log("error", "cannot become user %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) { /* cannot be, after setuid() as root */
		srv_log("error", "became user %s but could become root again", c->user);
		return -1;
	}
	return 0;
}

/* --harakiri in a worker: stop (SIGTERM, with the grace) and exit with
 * SRV_EXIT_REPLACE, on which the master starts another at once. */
static atomic_bool replacing;

static void replace_me(struct srv *s)
{
	(void)s;
	if (!atomic_exchange(&replacing, true))
		kill(getpid(), SIGTERM);
}

static int serve_dispatch(struct srv *s, const char *path, hm_http *r)
{
	return hm_dispatch(s->loader, path, r);
}

#ifdef HOTMOD_HTTPD_STATIC_HELLO
/*
 * The benchmark's baseline (bench/, "make bench"): the same server with
 * /hello answered by sample_handlers/hello.c's body linked in, no loader on
 * the way.  Every other path still goes through the loader.
 */
static int serve_static_hello(struct srv *s, const char *path, hm_http *r)
{
	if (strcmp(path, "/hello") == 0)
		return hm_http_puts(r, "Hello from hotmod!\n");
	return serve_dispatch(s, path, r);
}
#define SERVE serve_static_hello
#else
#define SERVE serve_dispatch
#endif

enum {
	OPT_MAX_CONNECTIONS = 256,
	OPT_HEADER_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_QUEUE_TIMEOUT,
	OPT_REQUEST_TIMEOUT,
	OPT_HARAKIRI,
	OPT_STATE_DIR,
	OPT_GOOD_AFTER,
	OPT_CANARY,
	OPT_CANARY_REQUESTS,
	OPT_CANARY_TIME,
	OPT_INLINE_HANDLERS,
};

/* Descriptors kept for modules, their files and the loader's watcher. */
#define SRV_FD_RESERVE 1024
#define SRV_DEFAULT_CONNECTIONS 16384u
/* Names host locks may have at once: each about 1.5 KiB of shared memory,
 * touched only when used. */
#define SRV_HOST_LOCKS 4096u

/*
 * Every connection is a descriptor: raise the soft limit to the hard one,
 * and keep --max-connections within it (less what modules need), so that
 * a flood of clients meets the connection limit, which closes what is
 * beyond it, and never an accept() or a module load failing for want of
 * a descriptor.
 */
static int connection_limit(struct srv_limits *l)
{
	struct rlimit rl;
	rlim_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		srv_log("error", "getrlimit: %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	room = rl.rlim_cur > 2 * SRV_FD_RESERVE ? rl.rlim_cur - SRV_FD_RESERVE :
		rl.rlim_cur / 2;
	if (!l->max_connections) {
		l->max_connections = room < SRV_DEFAULT_CONNECTIONS ? (unsigned)room :
			SRV_DEFAULT_CONNECTIONS;
	} else if (l->max_connections > room) {
		srv_log("warn", "--max-connections %u: the descriptor limit (%llu) allows "
				"%llu: serving at most that many",
			l->max_connections, (unsigned long long)rl.rlim_cur,
			(unsigned long long)room);
		l->max_connections = (unsigned)room;
	}
	return 0;
}

static int number(const char *opt, const char *arg, long min, long max, long *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*arg == '\0' || *end || v < min || v > max) {
		fprintf(stderr, "hotmod-httpd: %s %s: expected a number from %ld to %ld\n", opt,
			arg, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * Serve on fd until SIGTERM or SIGINT: in this process (--workers 0, id 0)
 * or as worker id, which writes a byte to ready_fd once it serves.  The
 * exit status.
 */
static int serve(void *arg, int fd, int ready_fd, unsigned id)
{
	struct config *c = arg;
	struct srv *s = &c->s;
	sigset_t sigs;
	int sig;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR2);
	if (drop_privileges(c) < 0)
		return 1;
	if (id != 0)
		s->stuck = replace_me;
	/* From the first init hook on, a crash names its module. */
	srv_crash_catch();
	c->opts.root = c->root;
	c->opts.log = srv_loader_log;
	/* Modules get an hm_http *: one built for another request is refused. */
	c->opts.request_kind = HM_HTTP_KIND;
	/* What the master quarantined is replaced by its last-known-good,
	 * or refused (builds.c). */
	if (srv_builds_dir())
		c->opts.admit = srv_builds_admit;
	if (hm_open(&s->loader, &c->opts) < 0) {
		srv_log("error", "%s", hm_errmsg());
		return 1;
	}
	if (srv_start(s, fd) < 0) {
		hm_close(s->loader, 0);
		return 1;
	}
	if (id == 0)
		srv_log("info", "serving %s on %s, port %u%s%s, %u handler threads", c->root,
			c->listen, srv_bound_port(fd), c->user ? ", as user " : "",
			c->user ? c->user : "", s->limits.threads);
	if (ready_fd >= 0 && (write(ready_fd, "", 1) < 0 || close(ready_fd) < 0))
		srv_log("warn", "cannot tell the master that this worker serves: %s",
			strerror(errno));
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			srv_log("info", "SIGHUP: rescanning %s", c->root);
			hm_rescan(s->loader);
		} else if (sig == SIGUSR2) { /* what the master admits changed */
			srv_builds_readmit(s->loader);
		} else if (sig == SIGTERM || sig == SIGINT) {
			break;
		}
	}
	srv_log("info", "%s: stopping: no new connections, waiting for requests in flight",
		atomic_load(&replacing) ? "a handler is stuck" : strsignal(sig));
	if (!srv_stop(s, (int)c->grace)) {
		/* A handler that does not return holds its version: nothing can
		 * be finalised.  The process ends; the kernel closes the rest. */
		srv_log("info", "stopped, abandoning what still runs");
		fflush(stderr);
		_exit(atomic_load(&replacing) ? SRV_EXIT_REPLACE : 0);
	}
	if (hm_close(s->loader, (int)c->grace) < 0) {
		srv_log("error", "%s", hm_errmsg());
		return 1;
	}
	srv_log("info", "stopped");
	return atomic_load(&replacing) ? SRV_EXIT_REPLACE : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"root", required_argument, NULL, 'r'},
		{"listen", required_argument, NULL, 'l'},
		{"workers", required_argument, NULL, 'W'},
		{"max-restarts", required_argument, NULL, 'M'},
		{"restart-period", required_argument, NULL, 'R'},
		{"threads", required_argument, NULL, 't'},
		{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
		{"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
		{"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
		{"queue-timeout", required_argument, NULL, OPT_QUEUE_TIMEOUT},
		{"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
		{"harakiri", required_argument, NULL, OPT_HARAKIRI},
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"good-after", required_argument, NULL, OPT_GOOD_AFTER},
		{"canary", no_argument, NULL, OPT_CANARY},
		{"canary-requests", required_argument, NULL, OPT_CANARY_REQUESTS},
		{"canary-time", required_argument, NULL, OPT_CANARY_TIME},
		{"inline-handlers", no_argument, NULL, OPT_INLINE_HANDLERS},
		{"watch", required_argument, NULL, 'w'},
		{"check-interval", required_argument, NULL, 'i'},
		{"grace", required_argument, NULL, 'g'},
		{"lazy", no_argument, NULL, 'L'},
		{"no-probe", no_argument, NULL, 'P'},
		{"user", required_argument, NULL, 'u'},
		{"allow-root", no_argument, NULL, 'A'},
		{"require-kind", no_argument, NULL, 'K'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct config c = {
		.s = {.serve = SERVE,
			.limits = {.threads = 16, .header_timeout_s = 10, .idle_timeout_s = 60,
				.queue_timeout_s = 5, .request_timeout_s = 30, .harakiri_s = 60}},
		.listen = "127.0.0.1:8080",
		.grace = 10000,
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), workers = cpus > 0 ? cpus : 1;
	long max_restarts = 10, period = 60, v;
	struct srv_builds_conf builds = {.good_after_s = 10, .canary_requests = 100,
		.canary_s = 60};
	bool allow_root = false;
	char banner[1024];
	sigset_t sigs;
	int ch, fd, rc;

	hm_options_init(&c.opts);
	c.opts.flags = HM_OPEN_PRELOAD | HM_OPEN_PROBE;
	while ((ch = getopt_long(argc, argv, "r:l:W:t:w:i:g:u:qvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			c.root = optarg;
			break;
		case 'l':
			c.listen = optarg;
			break;
		case 'W':
			if (number("--workers", optarg, 0, 1024, &workers) < 0)
				return 2;
			break;
		case 'M':
			if (number("--max-restarts", optarg, 0, 100000, &max_restarts) < 0)
				return 2;
			break;
		case 'R':
			if (number("--restart-period", optarg, 1, 86400, &period) < 0)
				return 2;
			break;
		case 't':
			if (number("--threads", optarg, 1, 1024, &v) < 0)
				return 2;
			c.s.limits.threads = (unsigned)v;
			break;
		case OPT_MAX_CONNECTIONS:
			if (number("--max-connections", optarg, 1, 1000000, &v) < 0)
				return 2;
			c.s.limits.max_connections = (unsigned)v;
			break;
		case OPT_HEADER_TIMEOUT:
		case OPT_IDLE_TIMEOUT:
		case OPT_QUEUE_TIMEOUT:
		case OPT_REQUEST_TIMEOUT:
		case OPT_HARAKIRI: {
			const struct option *o = longopts;
			while (o->val != ch)
				o++;
			char name[32];
			snprintf(name, sizeof name, "--%s", o->name);
			if (number(name, optarg, ch == OPT_HARAKIRI ? 0 : 1, 86400, &v) < 0)
				return 2;
			*(ch == OPT_HEADER_TIMEOUT ? &c.s.limits.header_timeout_s :
			  ch == OPT_IDLE_TIMEOUT ? &c.s.limits.idle_timeout_s :
			  ch == OPT_QUEUE_TIMEOUT ? &c.s.limits.queue_timeout_s :
			  ch == OPT_REQUEST_TIMEOUT ? &c.s.limits.request_timeout_s :
			  &c.s.limits.harakiri_s) = (unsigned)v;
			break;
		}
		case OPT_STATE_DIR:
			if (*optarg == '\0') {
				fputs("hotmod-httpd: --state-dir: an empty name\n", stderr);
				return 2;
			}
			builds.dir = optarg;
			break;
		case OPT_GOOD_AFTER:
		case OPT_CANARY_TIME:
			if (number(ch == OPT_GOOD_AFTER ? "--good-after" : "--canary-time", optarg,
				    0, 86400 * 365, &v) < 0)
				return 2;
			*(ch == OPT_GOOD_AFTER ? &builds.good_after_s : &builds.canary_s) =
				(unsigned)v;
			break;
		case OPT_CANARY:
			builds.canary = true;
			break;
		case OPT_INLINE_HANDLERS:
			c.s.limits.inline_handlers = true;
			break;
		case OPT_CANARY_REQUESTS:
			if (number("--canary-requests", optarg, 1, INT_MAX, &v) < 0)
				return 2;
			builds.canary_requests = (unsigned)v;
			break;
		case 'w':
			if (strcmp(optarg, "auto") == 0) {
				c.opts.watch = HM_WATCH_AUTO;
			} else if (strcmp(optarg, "inotify") == 0) {
				c.opts.watch = HM_WATCH_INOTIFY;
			} else if (strcmp(optarg, "stat") == 0) {
				c.opts.watch = HM_WATCH_STAT;
			} else {
				fprintf(stderr, "hotmod-httpd: --watch %s: expected auto, inotify "
						"or stat\n", optarg);
				return 2;
			}
			break;
		case 'i':
			if (number("--check-interval", optarg, 0, INT_MAX, &v) < 0)
				return 2;
			c.opts.check_interval_ms = (int)v;
			break;
		case 'g':
			if (number("--grace", optarg, 0, INT_MAX - 60000, &c.grace) < 0)
				return 2;
			break;
		case 'L':
			c.opts.flags &= ~HM_OPEN_PRELOAD;
			break;
		case 'P':
			c.opts.flags &= ~HM_OPEN_PROBE;
			break;
		case 'u':
			c.user = optarg;
			break;
		case 'A':
			allow_root = true;
			break;
		case 'K':
			c.opts.flags |= HM_OPEN_REQUIRE_KIND;
			break;
		case 'q':
			c.s.quiet = true;
			break;
		case 'v':
			srv_verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("hotmod-httpd %s (libhotmod %s)\n", PACKAGE_VERSION,
				hm_version_string());
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!c.root || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (c.user) {
		struct passwd *pw = getpwnam(c.user);
		if (!pw) {
			fprintf(stderr, "hotmod-httpd: --user %s: no such user\n", c.user);
			return 2;
		}
		if (geteuid() != 0 && pw->pw_uid != geteuid()) {
			fprintf(stderr, "hotmod-httpd: --user %s: only root can serve as "
					"another user\n", c.user);
			return 2;
		}
		c.uid = pw->pw_uid;
		c.gid = pw->pw_gid;
	} else if (geteuid() == 0 && !allow_root) {
		fputs("hotmod-httpd: refusing to serve as root: modules run with the "
		      "server's privileges, so every module, and whoever can write to "
		      "the root directory, would run as root.  Give --user NAME (the "
		      "master binds as root, the workers serve as NAME), or "
		      "--allow-root if that is what you want.\n", stderr);
		return 2;
	}

	/* Before any thread or worker exists: every one inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGPIPE);
	sigaddset(&sigs, SIGUSR2);
	if (workers > 0)
		sigaddset(&sigs, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (connection_limit(&c.s.limits) < 0)
		return 1;
	if ((fd = srv_bind(c.listen)) < 0)
		return 1;
	/* Host locks (hm_lock(3), HM_LOCK_HOST): one table for every worker
	 * (made before they fork), or for the one process. */
	if (hm_lock_host_init(SRV_HOST_LOCKS) < 0) {
		srv_log("error", "%s", hm_errmsg());
		return 1;
	}
	if (workers == 0) {
		if (builds.dir || builds.canary)
			srv_log("warn", "--state-dir and --canary need worker processes (a crash "
					"ends the one process of --workers 0): not used");
		return serve(&c, fd, -1, 0);
	}
	builds.root = c.root;
	builds.uid = c.uid;
	builds.gid = c.gid;
	builds.chown = c.user && geteuid() == 0;
	if (srv_builds_open(&builds) < 0)
		return 1;
	snprintf(banner, sizeof banner, "serving %s on %s, port %u%s%s", c.root, c.listen,
		srv_bound_port(fd), c.user ? ", as user " : "", c.user ? c.user : "");
	struct master m = {
		.workers = (unsigned)workers,
		.listen_fd = fd,
		.grace_ms = (int)c.grace,
		.max_restarts = (unsigned)max_restarts,
		.restart_period_s = (unsigned)period,
		.serve = serve,
		.arg = &c,
		.banner = banner,
	};
	rc = master_run(&m);
	srv_builds_close();
	if (m.listen_fd >= 0)
		close(m.listen_fd);
	return rc;
}
