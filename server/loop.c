/* SPDX-License-Identifier: MIT */
/*
 * loop.c - how a serving process spends its threads: one of them at a time
 * leads (runs every connection: libmicrohttpd in external epoll mode, and
 * the deadlines) and runs the handlers of the requests that came in; a
 * watchdog gives the lead to another when a handler takes long; deadlines
 * keep a client from holding a connection and a handler from holding a
 * client.  docs/SERVER.md says why this design and not a thread per
 * connection, handlers on a fixed loop, or a hand-off per request.
 *
 * An idle or slow client costs a connection (a descriptor and its
 * buffer), never a thread; a handler that blocks costs its thread, and
 * the requests queued behind it 5 ms (SRV_STEAL_MS) at most.
 *
 * Deadlines, all checked by the leader, each list in deadline order (one
 * timeout per list), so that only its head is ever looked at:
 * - s->heads: connections waiting for a request head, since they connected
 *   or since their previous response; past --header-timeout the socket is
 *   shut down, and libmicrohttpd closes it.
 * - s->queue: requests waiting for a thread; past --queue-timeout they are
 *   answered 503 with Retry-After.
 * - s->running: requests in a handler; past --request-timeout the client
 *   gets 503 at once (written by the leader on the suspended connection,
 *   which libmicrohttpd does not touch), the handler is left to finish,
 *   and the connection is closed when it does.  Past --harakiri, srv_stuck()
 *   is called: a worker then has itself replaced.
 */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t srv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- lists -------------------------------------------------------------------- */

#define LIST_APPEND(head, tail, x)                                                   \
	do {                                                                         \
		(x)->prev = (tail);                                                  \
		(x)->next = NULL;                                                    \
		if (tail)                                                            \
			(tail)->next = (x);                                          \
		else                                                                 \
			(head) = (x);                                                \
		(tail) = (x);                                                        \
	} while (0)

#define LIST_REMOVE(head, tail, x)                                                   \
	do {                                                                         \
		if ((x)->prev)                                                       \
			(x)->prev->next = (x)->next;                                 \
		else                                                                 \
			(head) = (x)->next;                                          \
		if ((x)->next)                                                       \
			(x)->next->prev = (x)->prev;                                 \
		else                                                                 \
			(tail) = (x)->prev;                                          \
		(x)->prev = (x)->next = NULL;                                        \
	} while (0)

/* ---- connections waiting for a request head (the leader's) -------------------- */

/* One per connection, from libmicrohttpd's "started" to its "closed". */
struct srv_conn {
	struct srv_conn *prev, *next; /* s->heads, while waiting */
	int64_t since;
	int fd;
	bool waiting;
};

static void head_wait(struct srv *s, struct srv_conn *c)
{
	if (!c || c->waiting)
		return;
	c->since = srv_now_ms();
	c->waiting = true;
	LIST_APPEND(s->heads, s->heads_tail, c);
}

static void head_done(struct srv *s, struct srv_conn *c)
{
	if (!c || !c->waiting)
		return;
	c->waiting = false;
	LIST_REMOVE(s->heads, s->heads_tail, c);
}

static struct srv_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

void srv_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	enum MHD_ConnectionNotificationCode code)
{
	struct srv *s = cls;
	struct srv_conn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* Without memory for its deadline the connection still serves;
		 * only the idle timeout then closes it. */
		if (!(c = calloc(1, sizeof *c)))
			return;
		c->fd = ci ? ci->connect_fd : -1;
		*socket_context = c;
		head_wait(s, c);
	} else if (c) {
		head_done(s, c);
		free(c);
		*socket_context = NULL;
	}
}

void srv_head_in(struct srv *s, struct MHD_Connection *conn)
{
	head_done(s, conn_of(conn));
}

void srv_head_next(struct srv *s, struct MHD_Connection *conn)
{
	head_wait(s, conn_of(conn));
}

static void wake(struct srv *s)
{
	uint64_t one = 1;

	(void)!write(s->wake_fd, &one, sizeof one);
}

/* ---- the requests' queue ----------------------------------------------------------- */

void srv_submit(struct srv *s, struct srv_job *j, struct MHD_Connection *conn)
{
	j->conn = conn;
	MHD_suspend_connection(conn);
	/* No signal: the leader runs the queue itself once libmicrohttpd
	 * returns (see lead()); followers look at it when they are free. */
	pthread_mutex_lock(&s->pool_mu);
	j->state = SRV_JOB_QUEUED;
	j->since = srv_now_ms();
	LIST_APPEND(s->queue, s->queue_tail, j);
	pthread_mutex_unlock(&s->pool_mu);
}

/* Run j's handler on the leader, under the watchdog's eye (s->inline_job);
 * pool_mu held on entry and return, dropped meanwhile. */
static void run_watched(struct srv *s, struct srv_job *j)
{
	s->inline_job = j;
	if (s->watch_sleeping)
		pthread_cond_signal(&s->watch_cv);
	pthread_mutex_unlock(&s->pool_mu);
	srv_run(s, j);
	pthread_mutex_lock(&s->pool_mu);
	if (s->inline_job == j)
		s->inline_job = NULL;
}

/*
 * --inline-handlers: the handler runs here, in libmicrohttpd's callback on
 * the leader, and the response goes out in the same pass: no suspend and
 * resume (two epoll_ctl a request), no wake-up.  The price: while it runs
 * no other connection of this process moves, nobody can take the lead,
 * and --request-timeout cannot answer before it returns.  The watchdog
 * still sees it (s->inline_job) for --harakiri.
 */
void srv_run_inline(struct srv *s, struct srv_job *j, struct MHD_Connection *conn)
{
	j->conn = conn;
	pthread_mutex_lock(&s->pool_mu);
	j->state = SRV_JOB_RUNNING;
	j->since = srv_now_ms();
	LIST_APPEND(s->running, s->running_tail, j);
	run_watched(s, j);
	LIST_REMOVE(s->running, s->running_tail, j);
	j->state = SRV_JOB_DONE;
	pthread_mutex_unlock(&s->pool_mu);
}

/* The oldest queued request, now running (under pool_mu). */
static struct srv_job *take(struct srv *s)
{
	struct srv_job *j = s->queue;

	LIST_REMOVE(s->queue, s->queue_tail, j);
	j->state = SRV_JOB_RUNNING;
	j->since = srv_now_ms();
	LIST_APPEND(s->running, s->running_tail, j);
	return j;
}

/* j's handler returned (under pool_mu): its connection, to resume; j is
 * the loop's again once it is (it frees it), not to be touched. */
static struct MHD_Connection *finish(struct srv *s, struct srv_job *j)
{
	LIST_REMOVE(s->running, s->running_tail, j);
	j->state = SRV_JOB_DONE;
	return j->conn;
}

/* How long a running handler has before the loop must look at it. */
static int64_t first_deadline_ms(const struct srv *s)
{
	unsigned t = s->limits.request_timeout_s;

	if (s->limits.harakiri_s && s->limits.harakiri_s < t)
		t = s->limits.harakiri_s;
	return (int64_t)t * 1000;
}

/* ---- deadlines (the leader) ----------------------------------------------------- */

static const char late_reply[] =
	"HTTP/1.1 503 Service Unavailable\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 20\r\n"
	"Retry-After: 1\r\n"
	"Connection: close\r\n"
	"\r\n"
	"Service Unavailable\n";
const size_t srv_late_length = sizeof "Service Unavailable\n" - 1;

/*
 * A handler has run past --request-timeout: answer its client now.  The
 * connection is suspended, so libmicrohttpd neither reads nor writes it,
 * and its previous response, if any, was sent in full before this request
 * was read.  The reply is far below a socket's buffer; a client whose
 * buffer is full gets the close alone.
 */
static void answer_late(struct srv_job *j)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (!ci)
		return;
	(void)!send(ci->connect_fd, late_reply, sizeof late_reply - 1,
		MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(ci->connect_fd, SHUT_WR);
}

/* Next deadline in ms from now (-1: none) once those due are acted on. */
static int64_t expire(struct srv *s, int64_t now)
{
	int64_t next = -1;
#define NEXT(at) (next = next < 0 || (at) - now < next ? (at) - now : next)

	while (s->heads) {
		struct srv_conn *c = s->heads;
		int64_t at = c->since + (int64_t)s->limits.header_timeout_s * 1000;
		if (at > now) {
			NEXT(at);
			break;
		}
		head_done(s, c);
		/* libmicrohttpd sees the end of the stream and closes it. */
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	}

	pthread_mutex_lock(&s->pool_mu);
	while (s->queue) {
		struct srv_job *j = s->queue;
		int64_t at = j->since + (int64_t)s->limits.queue_timeout_s * 1000;
		if (at > now) {
			NEXT(at);
			break;
		}
		LIST_REMOVE(s->queue, s->queue_tail, j);
		j->state = SRV_JOB_REFUSED;
		MHD_resume_connection(j->conn);
		next = 0; /* libmicrohttpd must run now to answer it */
	}
	/* In start order: the first with no deadline passed has every later
	 * one behind it. */
	for (struct srv_job *j = s->running; j; j = j->next) {
		int64_t late = j->since + (int64_t)s->limits.request_timeout_s * 1000;
		int64_t stuck = j->since + (int64_t)s->limits.harakiri_s * 1000;
		bool harakiri = s->limits.harakiri_s != 0, acted = false;
		if (!j->late && late <= now) {
			j->late = acted = true;
			answer_late(j);
			srv_late(s, j, now - j->since);
		}
		if (harakiri && !j->stuck && stuck <= now) {
			j->stuck = acted = true;
			srv_stuck(s, j, now - j->since);
		}
		if (!j->late)
			NEXT(late);
		if (harakiri && !j->stuck)
			NEXT(stuck);
		if (!acted && !j->late && !j->stuck)
			break;
	}
	s->wake_at = next < 0 ? INT64_MAX : now + next;
	pthread_mutex_unlock(&s->pool_mu);
#undef NEXT
	return next;
}

/* ---- serving threads: one leads, the others follow ------------------------------ */

/*
 * Each of the threads can lead: run the connection loop, then, itself,
 * the handlers of the requests that loop completed, one after the other
 * (as Kore does on its event loop): no hand-off, no thread switch, no
 * wake-up per request.  While the leader is in a handler nobody runs the
 * loop, so the watchdog gives the lead to an idle follower once a handler
 * has run SRV_STEAL_MS: it takes the loop and the queue, and the former
 * leader, when its handler returns, follows.  A leader with no idle
 * follower runs no handler (nobody could take over): the queue waits for
 * a thread that comes free, and the loop always runs.
 */
#define SRV_STEAL_MS 5

/* Lead until the lead is taken (a handler ran too long) or the server
 * stops.  me: this thread's token. */
static void lead(struct srv *s, const void *me)
{
	bool resumed = false; /* libmicrohttpd must run again at once */

	for (;;) {
		struct epoll_event ev[2];
		MHD_UNSIGNED_LONG_LONG mt;
		int64_t timeout = expire(s, srv_now_ms());

		if (MHD_get_timeout(s->mhd, &mt) == MHD_YES &&
		    (timeout < 0 || (int64_t)mt < timeout))
			timeout = (int64_t)mt;
		if (resumed)
			timeout = 0;
		if (timeout < 0 || timeout > 60000)
			timeout = 60000;
		int n = epoll_wait(s->epfd, ev, 2, (int)timeout);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == s->wake_fd) {
				uint64_t v;
				(void)!read(s->wake_fd, &v, sizeof v);
			}
		}
		int stop = atomic_load_explicit(&s->stop, memory_order_acquire);
		if (stop >= SRV_QUIESCE && !s->quiesced) {
			/* Stop accepting: this process's copy of the socket goes;
			 * connections already open finish their request. */
			MHD_socket fd = MHD_quiesce_daemon(s->mhd);
			if (fd != MHD_INVALID_SOCKET)
				close(fd);
			s->quiesced = true;
		}
		if (stop >= SRV_EXIT)
			return;
		MHD_run(s->mhd);

		resumed = false;
		pthread_mutex_lock(&s->pool_mu);
		while (s->leader == me && s->queue && s->idle_threads > 0) {
			struct srv_job *j = take(s);
			run_watched(s, j);
			MHD_resume_connection(finish(s, j));
			resumed = true;
		}
		bool still = s->leader == me;
		pthread_mutex_unlock(&s->pool_mu);
		if (!still) {
			/* The new leader runs libmicrohttpd for what this resumed. */
			wake(s);
			return;
		}
	}
}

static void *serving_thread(void *arg)
{
	struct srv *s = arg;
	void *crash_stack = srv_crash_stack();
	char me; /* this thread's token: its address */

	pthread_mutex_lock(&s->pool_mu);
	while (!s->pool_stop) {
		if (!s->leader && atomic_load(&s->stop) < SRV_EXIT) {
			s->leader = &me;
			pthread_mutex_unlock(&s->pool_mu);
			lead(s, &me);
			pthread_mutex_lock(&s->pool_mu);
			if (s->leader == &me) /* stopping */
				s->leader = NULL;
			continue;
		}
		if (s->queue) {
			struct srv_job *j = take(s);
			/* A deadline before the loop's next look: it must know.
			 * Under the lock, so that either the loop saw j or this
			 * sees when it looks next. */
			bool tell = j->since + first_deadline_ms(s) < s->wake_at;
			pthread_mutex_unlock(&s->pool_mu);
			if (tell)
				wake(s);
			srv_run(s, j);
			pthread_mutex_lock(&s->pool_mu);
			struct MHD_Connection *conn = finish(s, j);
			pthread_mutex_unlock(&s->pool_mu);
			MHD_resume_connection(conn);
			/* In external epoll mode libmicrohttpd has no wake-up of
			 * its own: the leader runs it again when told. */
			wake(s);
			pthread_mutex_lock(&s->pool_mu);
			continue;
		}
		s->idle_threads++;
		pthread_cond_wait(&s->pool_cv, &s->pool_mu);
		s->idle_threads--;
	}
	pthread_mutex_unlock(&s->pool_mu);
	srv_crash_stack_free(crash_stack);
	return NULL;
}

/* Give the lead away when the leader has been in a handler SRV_STEAL_MS. */
static void *watchdog_thread(void *arg)
{
	struct srv *s = arg;

	pthread_mutex_lock(&s->pool_mu);
	while (!s->pool_stop) {
		int64_t now = srv_now_ms();
		if (!s->inline_job && now - s->inline_last > 1000) {
			/* Nothing inline for a second: sleep until something is. */
			s->watch_sleeping = true;
			pthread_cond_wait(&s->watch_cv, &s->pool_mu);
			s->watch_sleeping = false;
			continue;
		}
		struct srv_job *j = s->inline_job;
		if (j && s->limits.inline_handlers) {
			/* In libmicrohttpd's callback: nobody else can run the
			 * loop; only --harakiri can end it. */
			s->inline_last = now;
			if (s->limits.harakiri_s && !j->stuck &&
			    j->since + (int64_t)s->limits.harakiri_s * 1000 <= now) {
				j->stuck = true;
				srv_stuck(s, j, now - j->since);
			}
		} else if (j) {
			s->inline_last = now;
			/* Long enough, and someone to lead instead: the handler
			 * runs on as any follower's. */
			if (j->since + SRV_STEAL_MS <= now && s->idle_threads > 0) {
				s->inline_job = NULL;
				s->leader = NULL;
				pthread_cond_broadcast(&s->pool_cv);
			}
		}
		struct timespec at;
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += SRV_STEAL_MS * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->watch_cv, &s->pool_mu, &at);
	}
	pthread_mutex_unlock(&s->pool_mu);
	return NULL;
}

/* Flags for libmicrohttpd: the loop runs it, connections suspend. */
unsigned srv_loop_flags(void)
{
	return MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
}

/* Stop every thread and join it (and the watchdog, if it runs). */
static void srv_loop_stop_threads(struct srv *s, bool watchdog)
{
	atomic_store_explicit(&s->stop, SRV_EXIT, memory_order_release);
	wake(s);
	pthread_mutex_lock(&s->pool_mu);
	s->pool_stop = true;
	pthread_cond_broadcast(&s->pool_cv);
	pthread_cond_signal(&s->watch_cv);
	pthread_mutex_unlock(&s->pool_mu);
	for (unsigned i = 0; i < s->nthreads; i++)
		pthread_join(s->pool[i], NULL);
	if (watchdog)
		pthread_join(s->watchdog, NULL);
	free(s->pool);
	s->pool = NULL;
}

int srv_loop_start(struct srv *s)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct epoll_event ev = {.events = EPOLLIN};
	pthread_condattr_t ca;
	unsigned started = 0;
	bool watchdog = false;
	int err;

	/* --threads handlers at once, and one more to lead meanwhile */
	s->nthreads = s->limits.threads + 1;
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_cond_init(&s->pool_cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->watch_cv, &ca);
	pthread_condattr_destroy(&ca);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!di || s->wake_fd < 0 || s->epfd < 0)
		goto fail;
	ev.data.fd = di->epoll_fd;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, di->epoll_fd, &ev) < 0)
		goto fail;
	ev.data.fd = s->wake_fd;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0)
		goto fail;
	if (!(s->pool = calloc(s->nthreads, sizeof *s->pool)))
		goto fail;
	if ((err = pthread_create(&s->watchdog, NULL, watchdog_thread, s)) != 0) {
		errno = err;
		goto fail;
	}
	watchdog = true;
	for (; started < s->nthreads; started++)
		if ((err = pthread_create(&s->pool[started], NULL, serving_thread, s)) != 0) {
			errno = err;
			goto fail;
		}
	return 0;
fail:
	err = errno;
	srv_log("error", "cannot start serving: %s", strerror(err));
	s->nthreads = started;
	srv_loop_stop_threads(s, watchdog);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	errno = err;
	return -1;
}

void srv_loop_quiesce(struct srv *s)
{
	atomic_store_explicit(&s->stop, SRV_QUIESCE, memory_order_release);
	wake(s);
}

void srv_loop_stop(struct srv *s)
{
	srv_loop_stop_threads(s, true);
	close(s->epfd);
	close(s->wake_fd);
}
