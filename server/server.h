/* SPDX-License-Identifier: MIT */
/* server.h - hotmod-httpd internals. */
#ifndef HOTMOD_SERVER_H
#define HOTMOD_SERVER_H

#include "config.h"

#include <hotmod.h>
#include <hotmod_http.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Where request bodies stop: larger ones get 413. */
#define SRV_MAX_BODY (1u << 20)
/* Connections served at once (per process); libmicrohttpd closes the ones
 * accepted beyond it. */
#define SRV_MAX_CONNECTIONS 1024u

struct srv {
	hm_loader *loader;
	struct MHD_Daemon *mhd;
	bool quiet; /* no access log */
	/* Requests between their first byte and their completion. */
	pthread_mutex_t mu;
	pthread_cond_t idle; /* inflight became empty */
	struct req *inflight; /* those requests, newest first */
	/*
	 * How a path is served: hm_dispatch() normally; the benchmark's build
	 * links a handler in statically to measure the loader's cost.
	 */
	int (*serve)(struct srv *s, const char *path, hm_http *r);
};

/* Log a line to stderr with a time stamp: "2026-11-22T10:00:00Z level: msg",
 * every byte outside printable ASCII and UTF-8 escaped (loader/names.h). */
void srv_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* hm_options.log for the loader. */
void srv_loader_log(void *arg, int level, const char *msg);

/* A listening socket on listen ("127.0.0.1:8080", "[::1]:0"), non-blocking;
 * -1 when it cannot be had (logged). */
int srv_bind(const char *addr);
/* The port fd is bound to (for port 0). */
unsigned srv_bound_port(int fd);
/* Start the daemon on the listening socket fd with a pool of threads, or a
 * thread per connection when threads is 0; 0 or -1. */
int srv_start(struct srv *s, int fd, unsigned threads);
/* Stop accepting; wait up to grace_ms for requests in flight; stop.  false
 * when some are still running then: each is logged as abandoned, the
 * daemon is left as it is (stopping it would wait for them), and the
 * caller exits without finalising anything. */
bool srv_stop(struct srv *s, int grace_ms);

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
	struct srv_track *tracks; /* master_run's: SRV_TRACKS a worker */
};
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
/* This worker's SRV_TRACKS tracks; NULL with --workers 0. */
extern struct srv_track *srv_tracks;

/* /_hotmod/status as JSON into a malloc'd string, or NULL. */
char *srv_status_json(hm_loader *loader, size_t *len);

#endif
