/* SPDX-License-Identifier: MIT */
/*
 * crash.c - a crash, named: when a module faults (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL) or aborts, say which module version and which hook of it was
 * running, then die by the same signal.
 *
 * The handler runs on the crashed thread, on a stack of its own where the
 * thread has one (a stack overflow leaves none), and does only what is
 * async-signal-safe: hm_running(3) and hm_module_digest(3) (the library
 * promises both), byte copies, and write(2).  A worker puts what it found
 * in its srv_crash, shared with the master, which logs it once the worker
 * is dead ("hello.so version 7 (sha256 ...) crashed worker 3 (SIGSEGV in
 * handle)"); --workers 0 writes the line to stderr itself.  Then the
 * handler, which was reset by SA_RESETHAND, re-raises the signal: blocked
 * while the handler runs, it ends the process as it would have.
 */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CRASH_STACK_SIZE (64 * 1024)

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

struct out {
	char *buf;
	size_t len, size;
};

static void put(struct out *o, const char *s)
{
	while (*s && o->len + 1 < o->size)
		o->buf[o->len++] = *s++;
	o->buf[o->len] = '\0';
}

static void put_u64(struct out *o, uint64_t v)
{
	char d[24];
	int n = 0;

	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < (int)sizeof d);
	while (n > 0 && o->len + 1 < o->size)
		o->buf[o->len++] = d[--n];
	o->buf[o->len] = '\0';
}

void srv_hex(const unsigned char digest[HM_DIGEST_SIZE], char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < HM_DIGEST_SIZE; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[2 * HM_DIGEST_SIZE] = '\0';
}

/* "a/b.so version 7 (sha256 ...)": what r runs. */
static void put_version(struct out *o, const struct hm_running *r)
{
	unsigned char d[HM_DIGEST_SIZE];
	char hex[2 * HM_DIGEST_SIZE + 1];

	put(o, hm_module_path(r->module));
	put(o, " version ");
	put_u64(o, hm_module_version(r->module));
	if (hm_module_digest(r->module, d) == 0) {
		srv_hex(d, hex);
		put(o, " (sha256 ");
		put(o, hex);
		put(o, ")");
	}
}

static void on_crash(int sig)
{
	static atomic_flag once = ATOMIC_FLAG_INIT;
	struct hm_running r;

	/* Another thread crashing meanwhile leaves the first one's account. */
	if (!atomic_flag_test_and_set(&once) && hm_running(&r)) {
		if (srv_shared) {
			struct srv_crash *c = &srv_shared->crash;
			struct out p = {c->path, 0, sizeof c->path};
			struct out h = {c->hook, 0, sizeof c->hook};
			atomic_store_explicit(&c->state, 1, memory_order_relaxed);
			c->signo = sig;
			put(&p, hm_module_path(r.module));
			c->version = hm_module_version(r.module);
			c->has_digest = hm_module_digest(r.module, c->digest) == 0;
			put(&h, r.hook);
			/* release: the master, seeing 2, sees the rest */
			atomic_store_explicit(&c->state, 2, memory_order_release);
		} else {
			char line[600];
			struct out o = {line, 0, sizeof line};
			const char *abbrev = sigabbrev_np(sig);
			put(&o, "hotmod-httpd: ");
			put_version(&o, &r);
			put(&o, " crashed the server (SIG");
			put(&o, abbrev ? abbrev : "?");
			put(&o, " in ");
			put(&o, r.hook);
			put(&o, ")\n");
			(void)!write(STDERR_FILENO, line, o.len);
		}
	}
	raise(sig); /* blocked until this returns; the default action then */
}

void srv_crash_catch(void)
{
	static char main_stack[CRASH_STACK_SIZE];
	struct sigaction sa = {.sa_handler = on_crash, .sa_flags = SA_ONSTACK | SA_RESETHAND};
	stack_t ss = {.ss_sp = main_stack, .ss_size = sizeof main_stack};

	sigaltstack(&ss, NULL);

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof crash_signals / sizeof *crash_signals; i++)
		sigaction(crash_signals[i], &sa, NULL);
}

void *srv_crash_stack(void)
{
	stack_t ss = {.ss_size = CRASH_STACK_SIZE};

	if (!(ss.ss_sp = malloc(CRASH_STACK_SIZE)))
		return NULL; /* the handler then runs on the thread's stack */
	if (sigaltstack(&ss, NULL) < 0) {
		free(ss.ss_sp);
		return NULL;
	}
	return ss.ss_sp;
}

void srv_crash_stack_free(void *stack)
{
	stack_t ss = {.ss_flags = SS_DISABLE};

	if (!stack)
		return;
	sigaltstack(&ss, NULL);
	free(stack);
}
