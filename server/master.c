/* SPDX-License-Identifier: MIT */
/*
 * master.c - hotmod-httpd's worker processes: the master binds the
 * listening socket (main.c), then runs this; it never opens a loader and
 * never runs a module, so nothing a module does can take it down.
 *
 * Each worker is a fork of the master before any thread exists: its own
 * loader, watcher and libmicrohttpd daemon, polling the one shared
 * listening socket (non-blocking: the workers that lose the race for a
 * connection go back to waiting).  A worker that dies is replaced, after a
 * delay that doubles with each death in the restart period (100 ms to 5 s),
 * until more than max_restarts die within restart_period_s: then the
 * master stops the others and exits 3, as an Erlang supervisor gives up
 * rather than restart for ever.  A worker that exits before it ever served,
 * while none has served yet, is a configuration the workers cannot start
 * with (a bad root, say): the master stops with exit status 1 at once.
 *
 * Signals come to the master through a signalfd (they are blocked in every
 * process; a worker takes its own with sigwait): SIGCHLD reaps, SIGHUP is
 * passed to every worker (each rescans), SIGUSR2 from a worker says a
 * canary is due (builds.c), SIGTERM and SIGINT stop: the
 * master closes its listening socket, each worker gets SIGTERM and grace_ms to let its requests finish, plus
 * HM__STOP_SLACK_MS to exit; one still there then is killed.  A worker
 * whose master is gone gets SIGTERM from the kernel (PR_SET_PDEATHSIG).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What a stopping worker gets beyond the grace to exit. */
#define SRV_STOP_SLACK_MS 3000
#define SRV_BACKOFF_MIN_MS 100
#define SRV_BACKOFF_MAX_MS 5000

unsigned srv_worker_id;
struct srv_shared *srv_shared;

struct worker {
	pid_t pid;          /* 0: not running */
	int64_t respawn_at; /* ms on CLOCK_MONOTONIC; 0: none due */
};

/* The master's own descriptors, closed in each worker. */
static int master_fds[2] = {-1, -1};

/* In the child: the worker's life; never returns. */
static void worker_run(struct master *m, unsigned id, pid_t master_pid, int ready_fd)
{
	sigset_t chld;

	for (int i = 0; i < 2; i++)
		if (master_fds[i] >= 0)
			close(master_fds[i]);

	/* Ended with the master, however it ends (SIGKILL too). */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master_pid)
		_exit(1);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_UNBLOCK, &chld, NULL); /* the probe's children are its own */
	srv_worker_id = id;
	srv_shared = m->shared ? &m->shared[id - 1] : NULL;
	exit(m->serve(m->arg, m->listen_fd, ready_fd, id));
}

static pid_t spawn(struct master *m, unsigned id, int ready_fd)
{
	pid_t master_pid = getpid(), pid;

	fflush(stderr);
	pid = fork();
	if (pid == 0)
		worker_run(m, id, master_pid, ready_fd);
	if (pid < 0)
		srv_log("error", "cannot start worker %u: fork: %s", id, strerror(errno));
	return pid;
}

/* How a worker ended, in words. */
static void describe(int status, char *buf, size_t size)
{
	if (WIFSIGNALED(status))
		snprintf(buf, size, "was killed by %s%s", strsignal(WTERMSIG(status)),
			WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
}

/* Signal every running worker. */
static void signal_all(struct master *m, struct worker *w, int sig)
{
	for (unsigned i = 0; i < m->workers; i++)
		if (w[i].pid > 0)
			kill(w[i].pid, sig);
}

static unsigned running(const struct master *m, const struct worker *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->workers; i++)
		n += w[i].pid > 0;
	return n;
}

/* Reap what has ended; calls back for each worker that did. */
static void reap(struct master *m, struct worker *w,
	void (*ended)(struct master *, struct worker *, unsigned, int, void *), void *arg)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (unsigned i = 0; i < m->workers; i++)
			if (w[i].pid == pid) {
				w[i].pid = 0;
				ended(m, w, i, status, arg);
				break;
			}
}

static void ended_at_stop(struct master *m, struct worker *w, unsigned i, int status,
	void *arg)
{
	char how[128];

	(void)m;
	(void)w;
	(void)arg;
	describe(status, how, sizeof how);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		srv_log("warn", "worker %u %s while stopping", i + 1, how);
}

/* SIGTERM every worker; wait grace_ms plus the slack for them; kill the rest. */
static void stop_all(struct master *m, struct worker *w, int sfd)
{
	int64_t deadline = srv_now_ms() + m->grace_ms + SRV_STOP_SLACK_MS;

	signal_all(m, w, SIGTERM);
	for (;;) {
		reap(m, w, ended_at_stop, NULL);
		if (running(m, w) == 0)
			return;
		int64_t left = deadline - srv_now_ms();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) > 0) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				; /* SIGCHLD: reaped above; another SIGTERM: already stopping */
		}
	}
	for (unsigned i = 0; i < m->workers; i++)
		if (w[i].pid > 0) {
			srv_log("warn", "worker %u (pid %d) did not stop within %d ms: killed",
				i + 1, (int)w[i].pid, m->grace_ms + SRV_STOP_SLACK_MS);
			kill(w[i].pid, SIGKILL);
		}
	while (running(m, w) > 0) {
		pid_t pid = waitpid(-1, NULL, 0);
		if (pid < 0 && errno != EINTR)
			break;
		for (unsigned i = 0; i < m->workers; i++)
			if (w[i].pid == pid)
				w[i].pid = 0;
	}
}

struct life {
	int64_t *deaths; /* the times of the last max_restarts + 1 deaths, a ring */
	unsigned ndeaths, next;
	bool served;     /* some worker became ready */
	int give_up;     /* exit status once the master gives up; 0: not yet */
};

/* The module version a crash of worker i found running, logged and
 * quarantined, and the requests it was serving (its tracks), logged; then
 * cleared for the next worker.  Whether a module version did it. */
static bool report_death(struct master *m, unsigned i)
{
	struct srv_shared *sh = m->shared ? &m->shared[i] : NULL;
	struct srv_track *t = sh ? sh->tracks : NULL;
	bool by_module = false;
	unsigned n = 0;

	/* acquire: pairs with the crash handler's publication (crash.c) */
	if (sh && atomic_load_explicit(&sh->crash.state, memory_order_acquire) == 2) {
		struct srv_crash *c = &sh->crash;
		const char *sig = sigabbrev_np(c->signo);
		char hex[2 * HM_DIGEST_SIZE + 1] = "unknown", why[96];
		c->path[sizeof c->path - 1] = c->hook[sizeof c->hook - 1] = '\0';
		if (c->has_digest)
			srv_hex(c->digest, hex);
		srv_log("error", "%s version %llu (sha256 %s) crashed worker %u (SIG%s in %s)",
			c->path, (unsigned long long)c->version, hex, i + 1, sig ? sig : "?",
			c->hook);
		snprintf(why, sizeof why, "crashed worker %u (SIG%s in %s)", i + 1,
			sig ? sig : "?", c->hook);
		if (c->has_digest && srv_builds_quarantine(c->path, c->digest, why)) {
			srv_log("error", "%s (sha256 %s) is quarantined: workers serve its "
					 "last-known-good build, if it has one, until the file "
					 "changes", c->path, hex);
			by_module = true;
		} else if (c->has_digest) {
			srv_log("warn", "%s: no room to quarantine it", c->path);
		}
	}

	for (unsigned k = 0; t && k < SRV_TRACKS; k++) {
		/* acquire: pairs with the worker's publication */
		if (atomic_load_explicit(&t[k].state, memory_order_acquire) != 2)
			continue;
		t[k].what[sizeof t[k].what - 1] = '\0';
		if (n++ < 8)
			srv_log("error", "worker %u was serving %s when it ended", i + 1,
				t[k].what);
	}
	if (n > 8)
		srv_log("error", "worker %u was serving %u more requests", i + 1, n - 8);
	if (sh)
		memset(sh, 0, sizeof *sh);
	return by_module;
}

/* A worker died while the master was serving: replace it, or give up. */
static void ended_serving(struct master *m, struct worker *w, unsigned i, int status,
	void *arg)
{
	struct life *life = arg;
	int64_t now = srv_now_ms();
	unsigned cap = m->max_restarts + 1, recent = 0;
	char how[128];

	if (WIFEXITED(status) && WEXITSTATUS(status) == SRV_EXIT_REPLACE) {
		/* Its handler hung (it said which): a replacement at once, not
		 * counted as a death; it stopped as it was told to. */
		srv_log("warn", "worker %u stopped to be replaced", i + 1);
		report_death(m, i);
		w[i].respawn_at = now;
		return;
	}
	describe(status, how, sizeof how);
	srv_log("error", "worker %u %s", i + 1, how);
	if (report_death(m, i)) {
		/* A quarantined build cannot do it again in a new worker: a
		 * replacement at once, not counted against --max-restarts.
		 * The others drop it too (srv_builds_readmit()). */
		signal_all(m, w, SIGUSR2);
		w[i].respawn_at = now;
		return;
	}
	if (!life->served && WIFEXITED(status) && WEXITSTATUS(status) == 1) {
		srv_log("error", "worker %u could not start (see above): stopping", i + 1);
		life->give_up = 1;
		return;
	}
	life->deaths[life->next] = now;
	life->next = (life->next + 1) % cap;
	if (life->ndeaths < cap)
		life->ndeaths++;
	for (unsigned k = 0; k < life->ndeaths; k++)
		recent += now - life->deaths[k] <= (int64_t)m->restart_period_s * 1000;
	if (recent > m->max_restarts) {
		srv_log("error", "workers died %u times within %u s (--max-restarts %u, "
				 "--restart-period %u): stopping",
			recent, m->restart_period_s, m->max_restarts, m->restart_period_s);
		life->give_up = 3;
		return;
	}
	int64_t delay = SRV_BACKOFF_MIN_MS << (recent > 6 ? 6 : recent - 1);
	w[i].respawn_at = now + (delay > SRV_BACKOFF_MAX_MS ? SRV_BACKOFF_MAX_MS : delay);
}

int master_run(struct master *m)
{
	struct worker *w = calloc(m->workers, sizeof *w);
	struct life life = {.deaths = calloc(m->max_restarts + 1, sizeof(int64_t))};
	sigset_t sigs;
	int ready[2] = {-1, -1}, sfd = -1, rc = 1;
	unsigned nready = 0;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGUSR2); /* a worker: a canary is due (builds.c) */
	if (!w || !life.deaths) {
		srv_log("error", "out of memory");
		goto out;
	}
	/* Shared with the workers: what each serves (report_death). */
	m->shared = mmap(NULL, (size_t)m->workers * sizeof *m->shared,
		PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m->shared == MAP_FAILED) {
		srv_log("warn", "no shared memory for what workers serve (%s): a crash "
				"will not say which requests it cut short", strerror(errno));
		m->shared = NULL;
	}
	if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    pipe2(ready, O_CLOEXEC | O_NONBLOCK) < 0) {
		srv_log("error", "cannot start the master: %s", strerror(errno));
		goto out;
	}
	master_fds[0] = sfd;
	master_fds[1] = ready[0];
	for (unsigned i = 0; i < m->workers; i++)
		if ((w[i].pid = spawn(m, i + 1, ready[1])) < 0) {
			w[i].pid = 0;
			stop_all(m, w, sfd);
			goto out;
		}
	for (;;) {
		int64_t next = -1, now = srv_now_ms();
		for (unsigned i = 0; i < m->workers; i++)
			if (w[i].respawn_at && (next < 0 || w[i].respawn_at < next))
				next = w[i].respawn_at;
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
			{.fd = ready[0], .events = POLLIN}};
		/* Candidates become good in their time, which a worker's admit
		 * set: looked at every second at least. */
		bool readmit = false;
		int due = srv_builds_tick(&readmit);
		if (readmit)
			signal_all(m, w, SIGUSR2);
		int timeout = next < 0 ? 1000 : next <= now ? 0 : (int)(next - now);
		if (due >= 0 && due < timeout)
			timeout = due;
		if (timeout > 1000)
			timeout = 1000;
		if (poll(p, 2, timeout) < 0 && errno != EINTR) {
			srv_log("error", "master: poll: %s", strerror(errno));
			stop_all(m, w, sfd);
			goto out;
		}
		if (p[1].revents & POLLIN) {
			char buf[64];
			ssize_t n;
			while ((n = read(ready[0], buf, sizeof buf)) > 0) {
				if (!life.served && nready + (unsigned)n >= m->workers)
					srv_log("info", "%s, %u worker process%s", m->banner,
						m->workers, m->workers == 1 ? "" : "es");
				nready += (unsigned)n;
				life.served = life.served || nready >= m->workers;
			}
		}
		struct signalfd_siginfo si;
		bool stop = false;
		while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
			if (si.ssi_signo == SIGHUP) {
				srv_log("info", "SIGHUP: passed to every worker");
				signal_all(m, w, SIGHUP);
			} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				srv_log("info", "%s: stopping the workers",
					strsignal((int)si.ssi_signo));
				stop = true;
			}
		}
		reap(m, w, ended_serving, &life);
		if (stop || life.give_up) {
			/* New connections are refused from now: the workers close
			 * their copies of the socket as they stop. */
			close(m->listen_fd);
			m->listen_fd = -1;
			stop_all(m, w, sfd);
			rc = stop ? 0 : life.give_up;
			if (stop)
				srv_log("info", "stopped");
			goto out;
		}
		now = srv_now_ms();
		for (unsigned i = 0; i < m->workers; i++) {
			if (!w[i].respawn_at || w[i].respawn_at > now)
				continue;
			w[i].respawn_at = 0;
			if ((w[i].pid = spawn(m, i + 1, ready[1])) < 0) {
				w[i].pid = 0;
				w[i].respawn_at = now + SRV_BACKOFF_MAX_MS;
			} else {
				srv_log("info", "worker %u restarted (pid %d)", i + 1, (int)w[i].pid);
			}
		}
	}
out:
	if (sfd >= 0)
		close(sfd);
	for (int i = 0; i < 2; i++)
		if (ready[i] >= 0)
			close(ready[i]);
	if (m->shared)
		munmap(m->shared, (size_t)m->workers * sizeof *m->shared);
	free(life.deaths);
	free(w);
	return rc;
}
