/* SPDX-License-Identifier: MIT */
/* server.h - hotmod-httpd internals. */
#ifndef HOTMOD_SERVER_H
#define HOTMOD_SERVER_H

#include "config.h"

#include <hotmod.h>
#include <hotmod_http.h>
#include "names.h" /* HM__KEY_MAX */
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The longest module path ("a/b.so") the loader has. */
#define SRV_KEY_MAX HM__KEY_MAX

/* Where request bodies stop: larger ones get 413. */
#define SRV_MAX_BODY (1u << 20)

/* What a serving process allows its clients and handlers (hotmod-httpd(8)). */
struct srv_limits {
	unsigned threads;          /* handlers at once (threads: one more) */
	unsigned max_connections;  /* open at once; more are closed at accept */
	unsigned header_timeout_s; /* to send a request head */
	unsigned idle_timeout_s;   /* nothing moves on a connection */
	unsigned queue_timeout_s;  /* waiting for a handler thread: then 503 */
	unsigned request_timeout_s; /* in a handler: then 503, the handler left */
	unsigned harakiri_s;       /* in a handler: then srv.stuck (0: never) */
	bool inline_handlers;      /* handlers run on the loop, in libmicrohttpd's
				    * callback: no suspend, no hand-over */
};

/* A request on its way through the queue and a handler (loop.c). */
enum srv_job_state {
	SRV_JOB_NONE,
	SRV_JOB_QUEUED,  /* waiting for a handler thread */
	SRV_JOB_RUNNING, /* in a handler */
	SRV_JOB_DONE,    /* the handler returned: respond */
	SRV_JOB_REFUSED, /* waited past --queue-timeout: 503 */
};
struct srv_job {
	struct srv_job *prev, *next; /* srv.queue or srv.running, under pool_mu */
	int64_t since;               /* ms: queued, then started */
	enum srv_job_state state;    /* under pool_mu */
	bool late;  /* ran past --request-timeout: 503 was sent, close at the end */
	bool stuck; /* ran past --harakiri: reported */
	struct MHD_Connection *conn;
};

enum { SRV_RUN, SRV_QUIESCE, SRV_EXIT };

struct srv {
	hm_loader *loader;
	struct MHD_Daemon *mhd;
	bool quiet; /* no access log */
	struct srv_limits limits;
	/* Requests between their head and their completion. */
	pthread_mutex_t mu;
	pthread_cond_t idle; /* inflight became empty */
	struct req *inflight; /* those requests, newest first */
	/*
	 * How a path is served: hm_dispatch() normally; the benchmark's build
	 * links a handler in statically to measure the loader's cost.
	 */
	int (*serve)(struct srv *s, const char *path, hm_http *r);
	/* A handler ran past --harakiri (NULL: only logged). */
	void (*stuck)(struct srv *s);

	/* loop.c: the connection loop's ... */
	int epfd, wake_fd;
	atomic_int stop; /* SRV_RUN, SRV_QUIESCE, SRV_EXIT */
	bool quiesced;   /* the leader's */
	struct srv_conn *heads, *heads_tail; /* waiting for a head, oldest first */
	/* ... and its serving threads, under pool_mu */
	pthread_t *pool, watchdog;
	unsigned nthreads;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;  /* followers wait: a queue, or no leader */
	pthread_cond_t watch_cv; /* the watchdog waits (CLOCK_MONOTONIC) */
	bool pool_stop, watch_sleeping;
	const void *leader;      /* the leading thread's token; NULL: none */
	unsigned idle_threads;   /* followers waiting */
	struct srv_job *inline_job; /* what the leader runs itself now */
	int64_t inline_last;     /* ms: the watchdog last saw one */
	struct srv_job *queue, *queue_tail;     /* oldest first */
	struct srv_job *running, *running_tail; /* started first first */
	int64_t wake_at; /* ms: when the loop looks at the deadlines next */
};

/* Log a line to stderr with a time stamp: "2026-11-22T10:00:00Z level: msg",
 * every byte outside printable ASCII and UTF-8 escaped (loader/names.h). */
void srv_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* --verbose: debug messages too. */
extern bool srv_verbose;
/* hm_options.log for the loader. */
void srv_loader_log(void *arg, int level, const char *msg);

/* A listening socket on listen ("127.0.0.1:8080", "[::1]:0"), non-blocking;
 * -1 when it cannot be had (logged). */
int srv_bind(const char *addr);
/* The port fd is bound to (for port 0). */
unsigned srv_bound_port(int fd);
/* Serve on the listening socket fd, with s->limits; 0, or -1 (logged). */
int srv_start(struct srv *s, int fd);
/* Stop accepting; wait up to grace_ms for requests in flight; stop.  false
 * when some are still running then: each is logged as abandoned, the
 * daemon is left as it is (stopping it would wait for them), and the
 * caller exits without finalising anything. */
bool srv_stop(struct srv *s, int grace_ms);

/* ---- the connection loop and the serving threads (loop.c) ---------------- */

int64_t srv_now_ms(void); /* CLOCK_MONOTONIC */
unsigned srv_loop_flags(void);
/* After MHD_start_daemon(): the threads; 0, or -1 (logged). */
int srv_loop_start(struct srv *s);
void srv_loop_quiesce(struct srv *s); /* stop accepting */
void srv_loop_stop(struct srv *s);    /* join every thread */
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION. */
void srv_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	enum MHD_ConnectionNotificationCode code);
void srv_head_in(struct srv *s, struct MHD_Connection *conn);   /* a head came */
void srv_head_next(struct srv *s, struct MHD_Connection *conn); /* wait for one */
/* From the access handler: suspend conn and queue j for a serving thread;
 * or, with --inline-handlers, run j's handler now, on the loop. */
void srv_submit(struct srv *s, struct srv_job *j, struct MHD_Connection *conn);
void srv_run_inline(struct srv *s, struct srv_job *j, struct MHD_Connection *conn);
/* httpd.c's, called by loop.c: run j's handler (a serving thread); j ran
 * past --request-timeout, or --harakiri (the leader, under pool_mu). */
void srv_run(struct srv *s, struct srv_job *j);
void srv_late(struct srv *s, struct srv_job *j, int64_t ms);
/* The body's length of the 503 sent at --request-timeout. */
extern const size_t srv_late_length;
void srv_stuck(struct srv *s, struct srv_job *j, int64_t ms);

/* ---- worker processes (master.c) ----------------------------------------- */

struct master {
	unsigned workers;
	int listen_fd;
	int grace_ms;          /* SIGTERM: how long workers get to finish */
	unsigned max_restarts; /* deaths allowed in restart_period_s ... */
	unsigned restart_period_s; /* ... before the master gives up */
	/* What a worker runs, in its own process: serve until SIGTERM on
	 * listen_fd, writing one byte to ready_fd once it serves; the process's
	 * exit status. */
	int (*serve)(void *arg, int listen_fd, int ready_fd, unsigned id);
	void *arg;
	/* Logged with ", N worker processes" once every worker serves. */
	const char *banner;
	struct srv_shared *shared; /* master_run's: one a worker */
};
/* A worker's exit status when it stopped to be replaced (--harakiri). */
#define SRV_EXIT_REPLACE 4
/* Run the workers, replace those that die, stop them on SIGTERM or SIGINT,
 * pass SIGHUP on; the master's exit status (hotmod-httpd(8), EXIT STATUS).
 * SIGTERM, SIGINT, SIGHUP and SIGCHLD must be blocked. */
int master_run(struct master *m);
/* This process's worker number in log lines (0: none). */
extern unsigned srv_worker_id;

/*
 * What a worker is serving, in memory shared with its master, which reads
 * it when the worker dies: the requests a crash cut short.  A track is
 * claimed (state 1), written, then published (state 2, release); the
 * master reads a dead worker's, so nothing races with it.
 */
#define SRV_TRACKS 256
struct srv_track {
	atomic_uint state; /* 0: free, 1: being written, 2: a request runs */
	char what[252];    /* "GET /probe", escaped */
};
/* What a crash handler found running (crash.c): the same states. */
struct srv_crash {
	atomic_uint state;
	int signo;
	char hook[16];  /* "handle" */
	char path[SRV_KEY_MAX + 1]; /* "hello.so" */
	uint64_t version;
	bool has_digest;
	unsigned char digest[HM_DIGEST_SIZE];
};
struct srv_shared {
	struct srv_crash crash;
	struct srv_track tracks[SRV_TRACKS];
};
/* This worker's; NULL with --workers 0. */
extern struct srv_shared *srv_shared;

/*
 * Module builds by path and SHA-256 (builds.c): those quarantined (they
 * crashed a worker, or failed as a canary) and those good long enough to
 * serve in their place, in memory the master shares with its workers and
 * in the state directory.
 */
struct srv_builds_conf {
	const char *dir;  /* --state-dir; NULL: a private one, removed at exit */
	const char *root; /* --root: the state directory must be outside it */
	uid_t uid;        /* the workers' user, given the directory ... */
	gid_t gid;
	bool chown;       /* ... when this is set */
	unsigned good_after_s; /* --good-after: admitted that long, no crash: good */
	bool canary;           /* --canary: a new build serves in worker 1 first */
	unsigned canary_requests, canary_s; /* ... promoted after either */
};
/* In the master, before the workers start: 0, or -1 (logged). */
int srv_builds_open(const struct srv_builds_conf *conf);
void srv_builds_close(void);
const char *srv_builds_dir(void); /* NULL when not open */
/* A worker's hm_options.admit: admit, substitute the last-known-good for a
 * quarantined build (or a canary held back), or refuse one that has none. */
int srv_builds_admit(void *arg, struct hm_admission *a);
/* A worker, told (SIGUSR2) that what it must admit changed: hm_readmit()
 * each path whose record did. */
void srv_builds_readmit(hm_loader *loader);
/* Whether some canary runs: then a worker tells each answer of a module,
 * by the build that gave it (path: "a/b.so"). */
bool srv_builds_canaries(void);
void srv_builds_served(const char *path, const unsigned char digest[HM_DIGEST_SIZE],
	int status);
/* The master: quarantine path's build (why: "crashed worker 3 (SIGSEGV in
 * handle)"); false when there is no room.  Then signal the workers. */
bool srv_builds_quarantine(const char *path, const unsigned char digest[HM_DIGEST_SIZE],
	const char *why);
/* The master, at least every second: make candidates good, judge canaries;
 * *readmit set when the workers must readmit (SIGUSR2).  ms until the next
 * is due, or -1 when none waits. */
int srv_builds_tick(bool *readmit);
/* A snapshot for the status: malloc'd, *out freed by the caller. */
struct srv_build_info {
	char path[SRV_KEY_MAX + 1];
	const char *state; /* "quarantined", "last-known-good", "good", "candidate" */
	unsigned char digest[HM_DIGEST_SIZE];
	int64_t since; /* s since the epoch; 0 for a candidate */
	char why[96];
};
size_t srv_builds_list(struct srv_build_info **out);
/* "0123...": digest as hex, into out[2 * HM_DIGEST_SIZE + 1]. */
void srv_hex(const unsigned char digest[HM_DIGEST_SIZE], char *out);

/* Catch the signals of a crash in this process: say what module version
 * and hook ran (in srv_shared's crash, else on stderr), then die by the
 * signal.  Once, on the main thread, which gets a stack for the handler
 * (one that overflowed its own cannot run it); another thread gets its
 * own with srv_crash_stack(), and frees it at its end. */
void srv_crash_catch(void);
void *srv_crash_stack(void);
void srv_crash_stack_free(void *stack);

/* /_hotmod/status as JSON into a malloc'd string, or NULL. */
char *srv_status_json(hm_loader *loader, size_t *len);

#endif
