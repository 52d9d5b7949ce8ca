/* SPDX-License-Identifier: MIT */
/*
 * hotmod-httpd - serve URL paths from shared objects under a directory, and
 * reload them when a new one is dropped in.  See hotmod-httpd(8).
 *
 * Signals are blocked in every thread and taken here with sigwait(2):
 * SIGHUP rescans the tree; SIGTERM and SIGINT stop accepting, let the
 * requests in flight finish, finalise every module and exit 0.
 */
#include "server.h"

#include "names.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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
	"  -t, --threads N         serve connections from a pool of N threads, each\n"
	"                          running many connections' event loop (a handler\n"
	"                          that blocks then delays the others on its thread);\n"
	"                          default: a thread per connection\n"
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
	"      --require-kind      refuse modules that do not declare the request\n"
	"                          kind " HM_HTTP_KIND " (default: those that declare\n"
	"                          none load; those built for another kind never do)\n"
	"  -q, --quiet             no access log\n"
	"  -v, --verbose           log debug messages of the loader too\n"
	"  -h, --help              this text\n"
	"  -V, --version           the version\n"
	"\n"
	"GET /_hotmod/status returns the loader's status as JSON.\n"
	"SIGHUP rescans DIR; SIGTERM or SIGINT stops gracefully.\n";

static bool verbose;

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
	fprintf(stderr, "%s %s: %s\n", when, level, msg);
}

void srv_loader_log(void *arg, int level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)arg;
	if (level < HM_LOG_DEBUG || verbose)
		srv_log(names[level & 3], "%s", msg);
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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"root", required_argument, NULL, 'r'},
		{"listen", required_argument, NULL, 'l'},
		{"threads", required_argument, NULL, 't'},
		{"watch", required_argument, NULL, 'w'},
		{"check-interval", required_argument, NULL, 'i'},
		{"grace", required_argument, NULL, 'g'},
		{"lazy", no_argument, NULL, 'L'},
		{"no-probe", no_argument, NULL, 'P'},
		{"require-kind", no_argument, NULL, 'K'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct srv s = {.serve = SERVE};
	struct hm_options opts;
	const char *root = NULL, *listen = "127.0.0.1:8080";
	long threads = 0, grace = 10000, v;
	sigset_t sigs;
	int c, sig, rc;

	hm_options_init(&opts);
	opts.flags = HM_OPEN_PRELOAD | HM_OPEN_PROBE;
	while ((c = getopt_long(argc, argv, "r:l:t:w:i:g:qvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 't':
			if (number("--threads", optarg, 1, 1024, &threads) < 0)
				return 2;
			break;
		case 'w':
			if (strcmp(optarg, "auto") == 0) {
				opts.watch = HM_WATCH_AUTO;
			} else if (strcmp(optarg, "inotify") == 0) {
				opts.watch = HM_WATCH_INOTIFY;
			} else if (strcmp(optarg, "stat") == 0) {
				opts.watch = HM_WATCH_STAT;
			} else {
				fprintf(stderr, "hotmod-httpd: --watch %s: expected auto, inotify "
						"or stat\n", optarg);
				return 2;
			}
			break;
		case 'i':
			if (number("--check-interval", optarg, 0, INT_MAX, &v) < 0)
				return 2;
			opts.check_interval_ms = (int)v;
			break;
		case 'g':
			if (number("--grace", optarg, 0, INT_MAX, &grace) < 0)
				return 2;
			break;
		case 'L':
			opts.flags &= ~HM_OPEN_PRELOAD;
			break;
		case 'P':
			opts.flags &= ~HM_OPEN_PROBE;
			break;
		case 'K':
			opts.flags |= HM_OPEN_REQUIRE_KIND;
			break;
		case 'q':
			s.quiet = true;
			break;
		case 'v':
			verbose = true;
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
	if (!root || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}

	/* Before any thread exists: every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	opts.root = root;
	opts.log = srv_loader_log;
	/* Modules get an hm_http *: one built for another request is refused. */
	opts.request_kind = HM_HTTP_KIND;
	if ((rc = hm_open(&s.loader, &opts)) < 0) {
		srv_log("error", "%s", hm_errmsg());
		return 1;
	}
	if (srv_start(&s, listen, (unsigned)threads) < 0) {
		hm_close(s.loader, 0);
		return 1;
	}
	if (threads)
		srv_log("info", "serving %s on %s, port %u, with a pool of %ld threads", root,
			listen, srv_port(&s), threads);
	else
		srv_log("info", "serving %s on %s, port %u, a thread per connection", root,
			listen, srv_port(&s));

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			srv_log("info", "SIGHUP: rescanning %s", root);
			hm_rescan(s.loader);
		} else if (sig == SIGTERM || sig == SIGINT) {
			break;
		}
	}
	srv_log("info", "%s: stopping: no new connections, waiting for requests in flight",
		strsignal(sig));
	srv_stop(&s, (int)grace);
	if (hm_close(s.loader, (int)grace) < 0) {
		srv_log("error", "%s", hm_errmsg());
		return 1;
	}
	srv_log("info", "stopped");
	return 0;
}
