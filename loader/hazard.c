/* SPDX-License-Identifier: MIT */
/*
 * hazard.c - what protects a version while hm_dispatch() runs it, and an
 * entry while a request looks it up; and each thread's own state.
 *
 * hm_get() takes a reference: a compare-and-swap on the version's count,
 * and a decrement in hm_put(), both on one cache line that every thread
 * serving that module writes.  hm_dispatch() knows that its version is
 * used by this thread only, and only until it returns, so it publishes it
 * in a hazard slot of the thread instead: a plain store, a re-check that
 * it is still current, and a store of NULL afterwards.  No atomic
 * read-modify-write, no shared line written.
 *
 * The other half is here, on the side that finalises: before a version
 * whose references are gone is finalised, the reaper issues
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full memory
 * barrier on every CPU running a thread of this process, and then scans
 * every thread's slots.  A request that published the version before that
 * barrier is seen in the scan; one that publishes it after sees, in its
 * re-check, that the version is no longer current, and falls back to a
 * reference.  This is the asymmetric-fence variant of hazard pointers:
 * the reader's store-load fence is replaced by a compiler barrier, paid
 * for by the rare reclaimer.
 *
 * A version found in a slot is deferred (v->deferred set before the
 * barrier); the request clearing its slot then reads v->deferred and wakes
 * the reaper, which scans again.  Where membarrier is missing when the
 * first thread attaches (before Linux 4.14, or filtered by seccomp),
 * hm_dispatch() takes references.
 *
 * Where it fails later (a seccomp filter installed after start), the
 * barrier is had another way: the scheduler runs a full memory barrier on
 * a CPU when it switches a thread out and in (membarrier's own design
 * rests on that).  So v is finalised once every thread with slots, seen
 * running when v was retired, has been switched out since, or was not
 * running then: its context-switch counts and state, read from
 * /proc/self/task/TID/status, say so.  Each such thread then either
 * published v before the switch, and the scan sees it, or re-checks after
 * it, and sees that v is no longer current.  Until then v waits
 * (HM__HZ_WAIT), and the reaper asks again on a timer.
 *
 * Slot records are per thread, in one list for the process, never freed:
 * a thread's record goes back to the list when the thread exits (a
 * pthread key destructor) for the next thread to take.
 *
 * A record also holds its thread's lookup window (hazard.h:
 * hm__window_open), the same idea for table entries: a request stores
 * OPEN before it loads the table and 0 when it no longer uses what it
 * found; hm__hazard_grace() is the reclaimer's half, a membarrier() and
 * then a wait for every open window to close.
 */
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

/* Each thread's state (hazard.h: hm__self). */
__thread struct hm__thread hm__tls;

static _Atomic(struct hm__hazards *) hm__hz_list;
static pthread_once_t hm__hz_once = PTHREAD_ONCE_INIT;
static pthread_key_t hm__hz_key;
static bool hm__hz_ok; /* written once in hm__hz_once: read after it */
/* A thread had to do without a record although membarrier works: it looks
 * up without a window, so no grace period can be trusted again. */
static atomic_bool hm__hz_unmarked;

static int hm__membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

static void hm__hz_thread_exit(void *arg)
{
	struct hm__hazards *r = arg;

	hm__tls.hz = NULL;
	/* A thread that exits inside a dispatch (pthread_exit() in a handler)
	 * keeps its version forever, as a reference never put would: its
	 * record is not reused. */
	for (int i = 0; i < HM__HAZARDS; i++)
		if (atomic_load_explicit(&r->slot[i], memory_order_relaxed))
			return;
	/* release: the next owner sees the slots NULL, as this thread left them */
	atomic_store_explicit(&r->used, false, memory_order_release);
}

static void hm__hz_init(void)
{
	int cmds = hm__membarrier(MEMBARRIER_CMD_QUERY);

	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
	    hm__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) < 0)
		return;
	if (pthread_key_create(&hm__hz_key, hm__hz_thread_exit) != 0)
		return;
	hm__hz_ok = true;
}

struct hm__hazards *hm__hazards_attach(struct hm__thread *self)
{
	struct hm__hazards *r;

	pthread_once(&hm__hz_once, hm__hz_init);
	if (!hm__hz_ok) {
		self->hz_failed = true; /* references, from now on */
		return NULL;
	}
	for (r = atomic_load_explicit(&hm__hz_list, memory_order_acquire); r; r = r->next) {
		bool free_one = false;
		/* acquire: pairs with the release in hm__hz_thread_exit() */
		if (!atomic_load_explicit(&r->used, memory_order_relaxed) &&
		    atomic_compare_exchange_strong_explicit(&r->used, &free_one, true,
			    memory_order_acquire, memory_order_relaxed))
			goto got;
	}
	/* Its own cache line: threads do not write each other's. */
	if (!(r = aligned_alloc(64, sizeof *r))) {
		/* seq_cst, before this thread's first lookup: see hm__hazard_grace */
		atomic_store(&hm__hz_unmarked, true);
		self->hz_failed = true;
		return NULL;
	}
	memset(r, 0, sizeof *r);
	atomic_init(&r->used, true);
	r->next = atomic_load_explicit(&hm__hz_list, memory_order_relaxed);
	/* release: a scanner that sees r sees its NULL slots */
	while (!atomic_compare_exchange_weak_explicit(&hm__hz_list, &r->next, r,
		memory_order_release, memory_order_relaxed))
		;
got:
	atomic_store_explicit(&r->tid, (int)gettid(), memory_order_relaxed);
	if (pthread_setspecific(hm__hz_key, r) != 0) {
		atomic_store_explicit(&r->used, false, memory_order_release);
		atomic_store(&hm__hz_unmarked, true);
		self->hz_failed = true;
		return NULL;
	}
	self->hz = r;
	return r;
}

/* Is v in some thread's slot?  Reads each slot with acquire: pairs with
 * the release store of NULL, so a version seen free is no longer used. */
static bool hm__hazard_scan(const struct hm__version *v)
{
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next)
		for (int i = 0; i < HM__HAZARDS; i++)
			if (atomic_load_explicit(&r->slot[i], memory_order_acquire) == v)
				return true;
	return false;
}

/* ---- without membarrier: waiting for the scheduler ---- */

/* The threads seen running when a version was retired. */
struct hm__quiesce {
	bool quiet; /* all have been switched out since */
	size_t n;
	struct hm__quiesce_thread {
		const struct hm__hazards *r;
		int tid;
		unsigned long switches;
	} t[];
};

/* membarrier failed when last tried; and was it logged (once a process). */
static atomic_bool hm__hz_polled, hm__hz_logged;

bool hm__hazard_polled(void)
{
	return atomic_load_explicit(&hm__hz_polled, memory_order_relaxed);
}

#define HM__GONE 1 /* the thread has exited */

/* Thread tid's state letter and context switches, from /proc; 0, HM__GONE
 * or -1 (not known now). */
static int hm__sched_of(int tid, char *state, unsigned long *switches)
{
	char path[64], buf[4096];
	const char *p;
	unsigned long vol, invol;
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT || errno == ESRCH ? HM__GONE : -1;
	while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	if (!(p = strstr(buf, "\nState:\t")) || !p[8])
		return -1;
	*state = p[8];
	if (!(p = strstr(buf, "\nvoluntary_ctxt_switches:\t")) ||
	    sscanf(p + 26, "%lu", &vol) != 1 ||
	    !(p = strstr(buf, "\nnonvoluntary_ctxt_switches:\t")) ||
	    sscanf(p + 29, "%lu", &invol) != 1)
		return -1;
	*switches = vol + invol;
	return 0;
}

/* Is the owner of r (tid) off every CPU, or switched out since switches? */
static int hm__switched(const struct hm__hazards *r, int tid, bool first,
	unsigned long *switches)
{
	unsigned long now;
	char state;
	int rc;

	if (!atomic_load_explicit(&r->used, memory_order_acquire) ||
	    atomic_load_explicit(&r->tid, memory_order_relaxed) != tid)
		return 1; /* the thread left its slots; another owns them now */
	if ((rc = hm__sched_of(tid, &state, &now)) != 0)
		return rc == HM__GONE ? 1 : -1;
	if (state != 'R') /* sleeping, stopped or dying: not in user code */
		return 1;
	if (first) {
		*switches = now;
		return 0;
	}
	return now != *switches;
}

/* The threads with slots that are running now; NULL if not known now. */
static struct hm__quiesce *hm__quiesce_take(void)
{
	struct hm__quiesce *q;
	size_t cap = 0, n = 0;
	int self = (int)gettid();

	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next)
		cap++;
	if (!(q = malloc(sizeof *q + cap * sizeof q->t[0])))
		return NULL;
	/* seq_cst: the retirement (v no longer current, deferred set) comes
	 * before what is read of the threads below. */
	atomic_thread_fence(memory_order_seq_cst);
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r && n < cap; r = r->next) {
		int tid = atomic_load_explicit(&r->tid, memory_order_relaxed), rc;
		unsigned long switches = 0;
		if (tid == self) /* the reclaiming thread is in no dispatch now */
			continue;
		if ((rc = hm__switched(r, tid, true, &switches)) < 0) {
			free(q);
			return NULL;
		}
		if (rc == 0)
			q->t[n++] = (struct hm__quiesce_thread){r, tid, switches};
	}
	q->n = n;
	q->quiet = false;
	return q;
}

/* Every thread of q switched out since (or gone, or asleep)? */
static bool hm__quiesce_done(struct hm__quiesce *q)
{
	size_t i = 0;

	while (i < q->n) {
		int rc = hm__switched(q->t[i].r, q->t[i].tid, false, &q->t[i].switches);
		if (rc < 0)
			return false;
		if (rc == 0) {
			i++;
			continue;
		}
		q->t[i] = q->t[--q->n]; /* this one is done */
	}
	/* seq_cst: what the threads did before their switch, the slots
	 * included, is seen by the scan after this. */
	atomic_thread_fence(memory_order_seq_cst);
	return q->quiet = true;
}

static void hm__membarrier_failed(struct hm__version *v, int err)
{
	bool was = false;

	atomic_store_explicit(&hm__hz_polled, true, memory_order_relaxed);
	if (atomic_compare_exchange_strong(&hm__hz_logged, &was, true))
		hm__log(v->entry->loader, HM_LOG_WARN,
			"membarrier failed (%s): a version is finalised once every thread "
			"that dispatched has been through the scheduler (slower)",
			strerror(err));
}

enum hm__held hm__hazard_held(struct hm__version *v)
{
	pthread_once(&hm__hz_once, hm__hz_init); /* then hm__hz_ok may be read */
	if (!hm__hz_ok)
		return HM__HZ_FREE; /* no slot is ever used */
	/* seq_cst, then the barrier: a request that clears its slot after
	 * the scan is sure to see deferred set, and wakes the reaper. */
	atomic_store(&v->deferred, true);
	/* A child after fork() is not registered (the registration belongs
	 * to the parent's memory): register, once, and try again. */
	if (hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) < 0 &&
	    (hm__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) < 0 ||
		hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) < 0)) {
		hm__membarrier_failed(v, errno);
		/* The scheduler's barriers instead (see the top). */
		bool quiet = (v->quiesce || (v->quiesce = hm__quiesce_take())) &&
			     (v->quiesce->quiet || hm__quiesce_done(v->quiesce));
		/* Last resort, where /proc cannot be read either: after
		 * HM__HZ_TRIES polls (a second or more), a slot store made
		 * before v was retired has long left its CPU's store buffer;
		 * the scan, after a full fence, decides.  Not a proof, but
		 * keeping every version for ever (no fini, hm_close() hanging)
		 * is the certain failure. */
		if (!quiet && ++v->quiesce_tries < HM__HZ_TRIES)
			return HM__HZ_WAIT;
		atomic_thread_fence(memory_order_seq_cst);
	} else {
		atomic_store_explicit(&hm__hz_polled, false, memory_order_relaxed);
	}
	if (hm__hazard_scan(v))
		return HM__HZ_HELD;
	free(v->quiesce);
	v->quiesce = NULL;
	v->quiesce_tries = 0;
	atomic_store_explicit(&v->deferred, false, memory_order_relaxed);
	return HM__HZ_FREE;
}

/* The barrier half of both protocols; false if it could not be run. */
static bool hm__barrier(void)
{
	/* A child after fork() is not registered (the registration belongs
	 * to the parent's memory): register, once, and try again. */
	return hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ||
	       (hm__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
		hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0);
}

/*
 * Until r's window, open now, has closed; false when it stays open for
 * seconds (a thread stopped in a debugger, or gone inside a window) or stop
 * is set.  Its thread stores only OPEN and 0; marking it WATCHED tells this
 * window from the next one, which a plain OPEN could not: once WATCHED,
 * only the close changes it.
 */
static bool hm__window_wait(struct hm__hazards *r, const atomic_bool *stop)
{
	unsigned long w = HM__WINDOW_OPEN;

	/* Closed, or another window opened since (then that one is waited
	 * for too, which is more than needed, never less). */
	if (!atomic_compare_exchange_strong_explicit(&r->window, &w, HM__WINDOW_WATCHED,
		    memory_order_acquire, memory_order_acquire) &&
	    w != HM__WINDOW_WATCHED)
		return true;
	for (int i = 0; i < 3000; i++) {
		/* acquire: pairs with the release stores of the window, so
		 * what the request did with the entries comes before */
		if (atomic_load_explicit(&r->window, memory_order_acquire) != HM__WINDOW_WATCHED)
			return true;
		if (stop && atomic_load_explicit(stop, memory_order_relaxed))
			return false;
		if (i < 100) {
			sched_yield(); /* a window is a few hundred instructions */
		} else {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
	}
	return false;
}

int hm__hazard_grace(const atomic_bool *stop)
{
	struct hm__hazards *own = hm__tls.hz;

	pthread_once(&hm__hz_once, hm__hz_init);
	if (!hm__hz_ok)
		return HM__GRACE_NONE;
	/*
	 * The caller published a table without the entries it frees.  After
	 * the barrier, each thread's window store came before, so the scan
	 * below sees it odd, or the thread's table load comes after, and it
	 * loads the new table.  A thread that starts without a record set
	 * hm__hz_unmarked before its first lookup: the same argument.
	 */
	if (!hm__barrier())
		return HM__GRACE_LATER;
	if (atomic_load(&hm__hz_unmarked))
		return HM__GRACE_UNMARKED;
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next) {
		/* acquire: pairs with the release store that closed it */
		if (atomic_load_explicit(&r->window, memory_order_acquire) == 0)
			continue;
		/* Our own open window: we are inside a lookup ourselves. */
		if (r == own || !hm__window_wait(r, stop))
			return HM__GRACE_LATER;
	}
	return 0;
}

unsigned long hm__hazard_count(const struct hm__version *v)
{
	unsigned long n = 0;

	pthread_once(&hm__hz_once, hm__hz_init);
	if (!hm__hz_ok)
		return 0;
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next)
		for (int i = 0; i < HM__HAZARDS; i++)
			n += atomic_load_explicit(&r->slot[i], memory_order_relaxed) == v;
	return n;
}

/* libhotmod unloaded (dlclose): threads must not call a destructor that is
 * gone.  Records stay allocated: a thread may still point to one. */
__attribute__((destructor)) static void hm__hz_unload(void)
{
	if (hm__hz_ok)
		pthread_key_delete(hm__hz_key);
}
