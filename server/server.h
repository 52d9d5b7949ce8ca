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
/* Connections served at once; more wait in the kernel's backlog. */
#define SRV_MAX_CONNECTIONS 1024u

struct srv {
	hm_loader *loader;
	struct MHD_Daemon *mhd;
	bool quiet; /* no access log */
	/* Requests between their first byte and their completion. */
	pthread_mutex_t mu;
	pthread_cond_t idle; /* active dropped to 0 */
	unsigned active;
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

/* Start the daemon on addr ("127.0.0.1:8080", "[::1]:0") with a pool of
 * threads, or a thread per connection when threads is 0; 0 or -1. */
int srv_start(struct srv *s, const char *listen, unsigned threads);
/* Stop accepting; wait up to grace_ms for requests in flight; stop. */
void srv_stop(struct srv *s, int grace_ms);
/* The port bound (for port 0). */
unsigned srv_port(struct srv *s);

/* /_hotmod/status as JSON into a malloc'd string, or NULL. */
char *srv_status_json(hm_loader *loader, size_t *len);

#endif
