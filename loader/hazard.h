/* SPDX-License-Identifier: MIT */
/*
 * hazard.h - hazard slots, lookup windows and each thread's state
 * (hazard.c).
 */
#ifndef HOTMOD_HAZARD_H
#define HOTMOD_HAZARD_H

#include "common.h"

struct hm__entry;
struct hm__version;

/* Nesting levels of hm_dispatch() protected by a slot; deeper ones take
 * references. */
#define HM__HAZARDS 8
/* One thread's slots: slot[d] is the version its dispatch at depth d runs. */
struct hm__hazards {
	/*
	 * The lookup window (see hm__window_open): HM__WINDOW_OPEN while this
	 * thread may use pointers into the table, or to entries found in it
	 * that it does not hold; 0 when closed.  Stored by its thread; the
	 * sweeper marks an open one HM__WINDOW_WATCHED (a compare-and-swap)
	 * and waits until its thread closes it.  First: depth 0's slot is on
	 * the same cache line.
	 */
	atomic_ulong window;
	_Atomic(struct hm__version *) slot[HM__HAZARDS];
	struct hm__hazards *next; /* the process's list; constant once linked */
	atomic_bool used;         /* owned by a live thread */
	atomic_int tid;           /* that thread's, written when it takes it */
} __attribute__((aligned(64)));
#define HM__WINDOW_OPEN 1ul
#define HM__WINDOW_WATCHED 3ul

/* The thread-local state of a thread that uses a loader. */
struct hm__thread {
	struct hm__entry *waiting_for; /* protected by loader->graph_lock */
	hm_ctx *current;               /* innermost call running on this thread */
	int depth;                     /* nesting of calls */
	struct hm__hazards *hz;        /* this thread's slots, once attached */
	bool hz_failed;                /* no slots: hm_dispatch() takes references */
};

/* Give this thread slots; NULL (and hz_failed set) if it cannot have any. */
HM__HIDDEN struct hm__hazards *hm__hazards_attach(struct hm__thread *self);
/* Before finalising v, whose references are gone: is it still in a slot?
 * Then (HM__HZ_HELD) it is marked deferred, and a request clearing its
 * slot calls hm__reaper_wake().  HM__HZ_WAIT: not known yet (membarrier
 * failed; some thread has not passed the scheduler since): ask again. */
enum hm__held { HM__HZ_FREE, HM__HZ_HELD, HM__HZ_WAIT };
/* After this many HM__HZ_WAIT answers (2 ms apart on the reaper) the scan
 * alone decides: the last resort when neither membarrier nor /proc can be
 * had (hazard.c). */
#define HM__HZ_TRIES 500
HM__HIDDEN enum hm__held hm__hazard_held(struct hm__version *v);
/* membarrier failed when last tried: deferred versions are asked again
 * on a timer, as a request clearing a slot may not see deferred set. */
HM__HIDDEN bool hm__hazard_polled(void);
/* Slots holding v now (for hm_status_get(); a snapshot). */
HM__HIDDEN unsigned long hm__hazard_count(const struct hm__version *v);
/*
 * Wait until every lookup window open now has closed (the grace period
 * after unlinking entries, table.c).  0, or why not: HM__GRACE_NONE (no
 * membarrier in this process: never), HM__GRACE_UNMARKED (a thread looks
 * up without a window: never), HM__GRACE_LATER (membarrier failed, or a
 * window stayed open for seconds: try again later).  stop, when set, ends
 * the wait early (HM__GRACE_LATER).
 */
enum hm__grace { HM__GRACE_NONE = 1, HM__GRACE_UNMARKED, HM__GRACE_LATER };
HM__HIDDEN int hm__hazard_grace(const atomic_bool *stop);
/*
 * initial-exec: reached with one %fs-relative access instead of a call to
 * __tls_get_addr on every request.  It costs 24 bytes of the static TLS
 * that glibc reserves for libraries loaded with dlopen (docs/DESIGN.md).
 */
extern HM__HIDDEN __thread struct hm__thread hm__tls
	__attribute__((tls_model("initial-exec")));
static inline struct hm__thread *hm__self(void)
{
	return &hm__tls;
}

/*
 * The lookup window: from before a request loads the table until it no
 * longer uses the entry it found (it holds a version then, or the entry
 * itself).  Opening and closing are one store each to the thread's own
 * record; the other half is in hm__hazard_grace(): after publishing a
 * table without some entries, the sweeper runs membarrier(), which orders
 * every thread's store before the sweeper's reads, and waits for each
 * open window to close.  A request that opened its window before the
 * barrier is waited for; one that opens it after loads the new table.
 * Windows do not nest: nothing inside one runs a hook or a request (a
 * version put there might be the last reference: it is put after the
 * window closed).  A thread without a record (no membarrier in the
 * process, or out of memory: see hm__hazards_attach) has no window; then
 * nothing is ever freed.
 */
static inline struct hm__hazards *hm__window_open(struct hm__thread *self)
{
	struct hm__hazards *hz = self->hz;

	if (!hz && (self->hz_failed || !(hz = hm__hazards_attach(self))))
		return NULL;
	/* release: a sweeper that reads any later value of the window sees
	 * everything this thread did before (ThreadSanitizer's view; the
	 * order that matters, this store before the table load that
	 * follows, is membarrier's part). */
	atomic_store_explicit(&hz->window, HM__WINDOW_OPEN, memory_order_release);
	atomic_signal_fence(memory_order_seq_cst);
	return hz;
}
static inline void hm__window_close(struct hm__hazards *hz)
{
	/* release: every use of what the window found comes before it */
	if (hz)
		atomic_store_explicit(&hz->window, 0, memory_order_release);
}

#endif /* HOTMOD_HAZARD_H */
