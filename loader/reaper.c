/* SPDX-License-Identifier: MIT */
/*
 * reaper.c - retiring versions whose last reference went: queued for the
 * loader's reaper thread, finalised (version.c) once no hazard slot holds
 * them (hazard.c), deferred and asked again while one does.  Without the
 * thread (it could not start, or hm_close() stopped it) the thread that
 * put the last reference does the work.
 */
#include "loader.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include "fault.h" /* last: see fault.h */

/* Defer v, found in a hazard slot or not known yet (wait); ver_lock held. */
static void hm__defer(hm_loader *l, struct hm__version *v, bool wait)
{
	v->queue_next = l->deferred;
	l->deferred = v;
	l->quiescing += wait;
}

/* Finalise v unless a dispatch still runs it (then defer it); no lock. */
static void hm__finalise_unless_held(hm_loader *l, struct hm__version *v)
{
	int held = hm__hazard_held(v);

	if (held != HM__HZ_FREE) {
		pthread_mutex_lock(&l->ver_lock);
		hm__defer(l, v, held == HM__HZ_WAIT);
		pthread_mutex_unlock(&l->ver_lock);
		return;
	}
	hm__version_finalise(v);
}

/* Look again at the deferred versions: a slot holding one was cleared. */
static void hm__reap_deferred(hm_loader *l)
{
	struct hm__version *v, *next;

	pthread_mutex_lock(&l->ver_lock);
	v = l->deferred;
	l->deferred = NULL;
	l->deferred_wake = false;
	l->quiescing = 0; /* counted again as they are deferred again */
	pthread_mutex_unlock(&l->ver_lock);
	for (; v; v = next) {
		next = v->queue_next;
		hm__finalise_unless_held(l, v);
	}
}

void hm__reaper_wake(hm_loader *l)
{
	bool here;

	pthread_mutex_lock(&l->ver_lock);
	l->deferred_wake = true;
	here = !l->reaper_started;
	pthread_cond_broadcast(&l->ver_cond);
	pthread_mutex_unlock(&l->ver_lock);
	if (here) /* no reaper (it could not start): this thread does it */
		hm__reap_deferred(l);
}

/* Sleep a little (or until woken), then look at the deferred versions
 * again; ver_lock held. */
static void hm__reaper_poll(hm_loader *l)
{
	enum { POLL_MS = 2 };
	struct timespec t = {0, 0}; /* unreadable clock: no wait, a poll */

	clock_gettime(CLOCK_MONOTONIC, &t); /* ver_cond's clock */
	t.tv_nsec += POLL_MS * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&l->ver_cond, &l->ver_lock, &t);
	l->deferred_wake = true;
}

static void *hm__reaper(void *arg)
{
	hm_loader *l = arg;

	pthread_mutex_lock(&l->ver_lock);
	for (;;) {
		struct hm__version *v = l->reap_head;
		if (!v) {
			if (l->deferred_wake) {
				l->finalising++;
				pthread_mutex_unlock(&l->ver_lock);
				hm__reap_deferred(l);
				pthread_mutex_lock(&l->ver_lock);
				if (--l->finalising == 0 && !l->reap_head)
					pthread_cond_broadcast(&l->ver_cond);
				continue;
			}
			/* hm_close() stops it once nothing is live: none deferred */
			if (l->reaper_stop)
				break;
			if (l->deferred && (l->quiescing > 0 || hm__hazard_polled())) {
				/* No membarrier: a cleared slot may not wake us,
				 * and threads pass the scheduler unseen.  Asked of
				 * this loader too: hm__hazard_polled() is the
				 * process's last answer, and a later membarrier
				 * that worked (another loader, another call)
				 * clears it while versions here still wait. */
				hm__reaper_poll(l);
				continue;
			}
			pthread_cond_wait(&l->ver_cond, &l->ver_lock);
			continue;
		}
		if (!(l->reap_head = v->queue_next))
			l->reap_tail = NULL;
		l->finalising++;
		pthread_mutex_unlock(&l->ver_lock);
		hm__finalise_unless_held(l, v);
		pthread_mutex_lock(&l->ver_lock);
		/* hm_close() waits, whatever its timeout, while this works */
		if (--l->finalising == 0 && !l->reap_head)
			pthread_cond_broadcast(&l->ver_cond);
	}
	pthread_mutex_unlock(&l->ver_lock);
	return NULL;
}

/* Start the reaper; ver_lock held.  Its signals stay with the embedder. */
static bool hm__reaper_start(hm_loader *l)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	l->reaper_started = pthread_create(&l->reaper, NULL, hm__reaper, l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (l->reaper_started)
		pthread_setname_np(l->reaper, "hotmod-reaper");
	return l->reaper_started;
}

void hm__version_retire(struct hm__version *v)
{
	hm_loader *l = v->entry->loader;

	pthread_mutex_lock(&l->ver_lock);
	if (l->reaper_started || (!l->reaper_stop && hm__reaper_start(l))) {
		v->queue_next = NULL;
		if (l->reap_tail)
			l->reap_tail->queue_next = v;
		else
			l->reap_head = v;
		l->reap_tail = v;
		pthread_cond_broadcast(&l->ver_cond);
		pthread_mutex_unlock(&l->ver_lock);
		return;
	}
	pthread_mutex_unlock(&l->ver_lock);
	/* No reaper (it could not start, or close stopped it): do it here. */
	hm__finalise_unless_held(l, v);
}

/*
 * hm_close() with no reaper thread (it could not start): nobody else asks
 * again about the versions waiting for HM__HZ_WAIT to end, so close does,
 * every 2 ms.  ver_lock held, dropped meanwhile; false if none waits.
 */
bool hm__reap_here(hm_loader *l)
{
	if (l->reaper_started || !l->deferred)
		return false;
	pthread_mutex_unlock(&l->ver_lock);
	hm__reap_deferred(l);
	pthread_mutex_lock(&l->ver_lock);
	if (l->deferred)
		hm__reaper_poll(l);
	return true;
}

bool hm__reaping(const hm_loader *l)
{
	return l->reap_head || l->finalising > 0 || l->deferred_wake || l->quiescing > 0;
}

void hm__reaper_stop(hm_loader *l)
{
	bool join;

	pthread_mutex_lock(&l->ver_lock);
	l->reaper_stop = true;
	join = l->reaper_started;
	l->reaper_started = false;
	pthread_cond_broadcast(&l->ver_cond);
	pthread_mutex_unlock(&l->ver_lock);
	if (join)
		pthread_join(l->reaper, NULL);
}

