/* SPDX-License-Identifier: MIT */
/*
 * version.c - one loaded version of a file: dlopen of the sealed memfd, the
 * descriptor check, init; and at the end of its life fini, dlclose and the
 * check that it really left the process.
 *
 * Finalisation runs on the loader's reaper thread, so the request that puts
 * the last reference on a stale version does not pay for fini and dlclose;
 * and only once no hm_dispatch() runs the version any more: see
 * hazard_linux.c.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

/* Smallest descriptor a module may define: abi and size only. */
#define HM__DESC_MIN offsetof(struct hm_module_desc, init)
/* Largest we believe: anything bigger is not a descriptor. */
#define HM__DESC_MAX 4096u

static void hm__fdname(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/*
 * glibc knows a loaded object by the string given to dlopen.  Our names are
 * /proc/self/fd/N, unique while the memfd stays open; but if some N was
 * used for another object that is still loaded (a pinned version keeps its
 * fd open for this reason, but the embedder may dlopen such paths too),
 * dlopen would return that object.  Probe, and move to another fd number.
 */
static int hm__dlopen(int *memfd, const char *key, void **dl)
{
	char name[64];
	int tries = 0;

	for (;;) {
		hm__fdname(name, sizeof name, *memfd);
		void *stale = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
		if (!stale)
			break;
		dlclose(stale);
		if (++tries == 8)
			return hm__fail(HM_ESYS, "%s: no unused name for dlopen: "
						 "/proc/self/fd/N names taken by loaded objects", key);
		int fd = fcntl(*memfd, F_DUPFD_CLOEXEC, *memfd + 1);
		if (fd < 0)
			return hm__fail(HM_ESYS, "%s: dup: %s", key, strerror(errno));
		close(*memfd);
		*memfd = fd;
	}
	*dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!*dl) {
		const char *why = dlerror();
		/* The name is ours, not the user's: show what follows it. */
		const char *colon = why ? strstr(why, ": ") : NULL;
		return hm__fail(HM_EDLOPEN, "%s: dlopen: %s", key,
			colon ? colon + 2 : why ? why : "unknown error");
	}
	return 0;
}

/*
 * Is [addr, addr + len) inside a loaded segment with the flags need (PF_R,
 * PF_X) of the object lm, or of any loaded object if lm is NULL?  Asked of
 * the program headers (dl_iterate_phdr): the address itself is not read.
 * A corrupt relocation or symbol value can point anywhere, and the loader
 * is about to read the descriptor there and call its hooks.
 */
struct hm__where {
	uintptr_t addr;
	size_t len;
	const struct link_map *lm;
	unsigned need;
};

static int hm__where_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	const struct hm__where *w = arg;

	(void)size;
	if (w->lm && (info->dlpi_addr != w->lm->l_addr || info->dlpi_name != w->lm->l_name))
		return 0;
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & w->need) == w->need &&
		    w->addr >= lo && w->addr - lo <= ph->p_memsz &&
		    w->len <= ph->p_memsz - (w->addr - lo))
			return 1;
	}
	return 0;
}

static bool hm__inside(const void *addr, size_t len, const struct link_map *lm,
	unsigned need)
{
	struct hm__where w = {(uintptr_t)addr, len, lm, need};

	return dl_iterate_phdr(hm__where_cb, &w) != 0;
}

/*
 * Read the descriptor into hooks; the module may know fewer members.  Not
 * found with dlsym(): glibc's symbol lookup trusts the object's hash and
 * symbol tables, and a corrupt one crashes it (fuzzing found it, also where
 * HM_OPEN_PROBE's lookup in another process passed: the read that faults
 * there depends on where the object is mapped).  The loader reads the
 * symbol table from the sealed copy itself, every read bounded by the file.
 */
static int hm__read_desc(void *dl, int memfd, const char *key, struct hm__hooks *hooks)
{
	const struct hm_module_desc *d;
	struct hm_module_desc copy;
	struct link_map *lm;
	uint64_t value;
	int rc;

	if ((rc = hm__elf_symbol(memfd, HM_MODULE_SYMBOL, &value)) == HM_ENODESC)
		return hm__fail(HM_ENODESC, "%s: no '%s' symbol: define the descriptor "
					    "with HM_MODULE()", key, HM_MODULE_SYMBOL);
	if (rc < 0)
		return hm__fail(rc, "%s: reading its symbol table: %s", key,
			rc == HM_ENOMEM ? "out of memory" : strerror(errno));
	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0) {
		const char *why = dlerror();
		return hm__fail(HM_ESYS, "%s: dlinfo: %s", key, why ? why : "unknown error");
	}
	d = (const struct hm_module_desc *)(lm->l_addr + (uintptr_t)value);
	if ((uintptr_t)d % _Alignof(struct hm_module_desc) != 0 ||
	    !hm__inside(d, HM__DESC_MIN, lm, PF_R))
		return hm__fail(HM_ENODESC, "%s: its '%s' symbol does not point into the "
					    "module's own loaded data: the file is corrupt",
			key, HM_MODULE_SYMBOL);
	if (d->abi != HM_ABI_VERSION)
		return hm__fail(HM_EABI, "%s: built for module ABI %u, this loader has %u",
			key, (unsigned)d->abi, (unsigned)HM_ABI_VERSION);
	if (d->size < HM__DESC_MIN || d->size > HM__DESC_MAX || !hm__inside(d, d->size, lm, PF_R))
		return hm__fail(HM_EABI, "%s: descriptor size %u is not plausible",
			key, (unsigned)d->size);
	memset(&copy, 0, sizeof copy);
	memcpy(&copy, d, d->size < sizeof copy ? d->size : sizeof copy);
	*hooks = (struct hm__hooks){
		.init = copy.init,
		.fini = copy.fini,
		.prepare = copy.prepare,
		.handle = copy.handle,
		.commit = copy.commit,
		.rollback = copy.rollback,
		.release = copy.release,
	};
	/* Hooks are code of some loaded object (the module's, as a rule). */
	static const char *const names[] = {"init", "fini", "prepare", "handle", "commit",
		"rollback", "release"};
	const void *const code[] = {(const void *)(uintptr_t)hooks->init,
		(const void *)(uintptr_t)hooks->fini, (const void *)(uintptr_t)hooks->prepare,
		(const void *)(uintptr_t)hooks->handle, (const void *)(uintptr_t)hooks->commit,
		(const void *)(uintptr_t)hooks->rollback, (const void *)(uintptr_t)hooks->release};
	for (size_t i = 0; i < sizeof code / sizeof code[0]; i++)
		if (code[i] && !hm__inside(code[i], 1, NULL, PF_X))
			return hm__fail(HM_ENODESC, "%s: its %s hook points outside any "
						    "loaded code: the file is corrupt", key, names[i]);
	return 0;
}

/* A slot from the free list or the heap, not yet live; ver_lock free. */
static struct hm_module *hm__slot_get(hm_loader *l)
{
	struct hm_module *v;

	pthread_mutex_lock(&l->ver_lock);
	if ((v = l->free_slots) != NULL)
		l->free_slots = v->queue_next;
	pthread_mutex_unlock(&l->ver_lock);
	if (!v && (v = calloc(1, sizeof *v)) != NULL)
		atomic_init(&v->refs, 0);
	return v;
}

/*
 * Put v, whose entry, gen and id are written, on the live list.  Only
 * then: hm_status_get() and hm_close() read those of every live version
 * under ver_lock, and the lock is what orders the writes before their
 * reads (a version listed first showed in the status with the entry and
 * number of the slot's last life).
 */
static void hm__slot_link(hm_loader *l, struct hm_module *v)
{
	pthread_mutex_lock(&l->ver_lock);
	v->live_prev = NULL;
	v->live_next = l->live;
	if (l->live)
		l->live->live_prev = v;
	l->live = v;
	l->nlive++;
	pthread_mutex_unlock(&l->ver_lock);
}

/* Back to the free list.  refs is 0 and stays 0 until the slot is reused. */
static void hm__slot_put(hm_loader *l, struct hm_module *v)
{
	pthread_mutex_lock(&l->ver_lock);
	if (v->live_prev)
		v->live_prev->live_next = v->live_next;
	else
		l->live = v->live_next;
	if (v->live_next)
		v->live_next->live_prev = v->live_prev;
	v->queue_next = l->free_slots;
	l->free_slots = v;
	if (--l->nlive == 0)
		pthread_cond_broadcast(&l->ver_cond);
	pthread_mutex_unlock(&l->ver_lock);
}

static void hm__init_ctx(hm_ctx *ctx, struct hm_module *v, enum hm__phase phase)
{
	bool global = v->entry->is_global;

	*ctx = (hm_ctx){
		.loader = v->entry->loader,
		.mod = global ? NULL : v,
		.glob = global ? v : v->global,
		.layer = global ? HM_LAYER_GLOBAL : HM_LAYER_MODULE,
		.phase = phase,
	};
}

/*
 * Pinned objects: still mapped after the loader's dlclose (nodelete, unique
 * symbols, thread_local destructors not yet run: docs/DESIGN.md).  The
 * memfd of each stays open while glibc keeps the object, so that its name
 * is never given to another one.  glibc unloads an object whose last
 * thread_local destructor has run at the next dlclose in the process; the
 * sweep below (after each finalisation and at hm_close()) then closes its
 * memfd.  Process-wide: an object may outlive the loader that pinned it.
 */
struct hm__pin {
	struct hm__pin *next;
	int memfd;
	hm_loader *loader; /* whose count it is in; NULL once that one closed */
	uint64_t gen;      /* 0: a failed load */
	char key[];
};
/* Protects the list and each pin's loader.  Held across the sweep's
 * dlopen and dlclose (which may run an unloaded object's destructors):
 * taken before a loader's ver_lock, never after. */
static pthread_mutex_t hm__pins_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hm__pin *hm__pins;
/* Some pin exists: read without the lock to skip the sweep (relaxed: a
 * pin missed now is swept at the next finalisation or close). */
static atomic_bool hm__pins_any;

/* Is the object loaded from memfd still in the process? */
static bool hm__still_mapped(int memfd)
{
	char name[64];
	void *still;

	hm__fdname(name, sizeof name, memfd);
	still = dlopen(name, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
	if (!still)
		return false;
	dlclose(still);
	return true;
}

static void hm__pin_add(hm_loader *l, const char *key, uint64_t gen, int memfd)
{
	size_t len = strlen(key) + 1;
	struct hm__pin *p = malloc(sizeof *p + len);

	if (!p) /* then the memfd stays open for good, as the name demands */
		return;
	p->memfd = memfd;
	p->loader = l;
	p->gen = gen;
	memcpy(p->key, key, len);
	pthread_mutex_lock(&hm__pins_lock);
	p->next = hm__pins;
	hm__pins = p;
	atomic_store_explicit(&hm__pins_any, true, memory_order_relaxed);
	pthread_mutex_unlock(&hm__pins_lock);
}

/*
 * Close the memfds of pinned objects glibc has unloaded since, and count
 * them out.  forget: l is closing; its pins that stay are no one's.  The
 * log names what l released (other loaders' pins are released silently).
 */
void hm__pins_sweep(hm_loader *l, bool forget)
{
	struct hm__pin **pp, *p, *gone = NULL;

	if (!atomic_load_explicit(&hm__pins_any, memory_order_relaxed))
		return;
	pthread_mutex_lock(&hm__pins_lock);
	for (pp = &hm__pins; (p = *pp) != NULL;) {
		/* A probe's own dlclose is a dlclose too: it unloads the object
		 * if nothing holds it any more, so ask twice. */
		if (hm__still_mapped(p->memfd) && hm__still_mapped(p->memfd)) {
			if (forget && p->loader == l)
				p->loader = NULL;
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		close(p->memfd);
		if (p->loader) {
			pthread_mutex_lock(&p->loader->ver_lock);
			p->loader->pinned--;
			pthread_mutex_unlock(&p->loader->ver_lock);
		}
		if (p->loader == l) {
			p->next = gone;
			gone = p;
		} else {
			free(p);
		}
	}
	atomic_store_explicit(&hm__pins_any, hm__pins != NULL, memory_order_relaxed);
	pthread_mutex_unlock(&hm__pins_lock);
	while ((p = gone) != NULL) {
		gone = p->next;
		if (p->gen)
			hm__log(l, HM_LOG_INFO, "%s version %llu was unloaded at last: "
						"no longer pinned", p->key, (unsigned long long)p->gen);
		else
			hm__log(l, HM_LOG_INFO, "%s: a failed load was unloaded at last: "
						"no longer pinned", p->key);
		free(p);
	}
}

/*
 * dlclose, then ask whether the object is really gone.  If it stayed (see
 * docs/DESIGN.md, "dlclose does not always unload"), its name must
 * not be reused while it stays: keep the memfd open, count it, and let the
 * sweep close it once glibc has unloaded the object.
 */
static bool hm__unload(struct hm__entry *e, uint64_t gen, void *dl, int memfd)
{
	hm_loader *l = e->loader;
	const char *key = e->key;

	dlclose(dl);
	if (hm__still_mapped(memfd)) {
		pthread_mutex_lock(&l->ver_lock);
		l->pinned++; /* before a sweep can count it out */
		pthread_mutex_unlock(&l->ver_lock);
		hm__pin_add(l, key, gen, memfd);
		pthread_mutex_lock(&e->lock);
		e->pinned++;
		pthread_mutex_unlock(&e->lock);
		if (gen)
			hm__log(l, HM_LOG_WARN,
				"%s version %llu could not be unloaded: it stays mapped (pinned)",
				key, (unsigned long long)gen);
		else
			hm__log(l, HM_LOG_WARN,
				"%s: a failed load could not be unloaded: it stays mapped (pinned)",
				key);
		return false;
	}
	close(memfd);
	return true;
}

/*
 * Do two sealed memfds of size bytes hold the same bytes?  Read, not
 * mapped: each munmap() would interrupt every CPU running a thread of the
 * process (a TLB shootdown), which costs more than the copy in a VM.  Any
 * failure answers no: the file is then loaded as new.
 */
static bool hm__same_bytes(int a, int b, size_t size)
{
	enum { CHUNK = 64 * 1024 };
	char *buf = malloc(2 * CHUNK);
	bool same = buf != NULL;

	for (size_t off = 0; same && off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? size - off : CHUNK;
		same = pread(a, buf, n, (off_t)off) == (ssize_t)n &&
		       pread(b, buf + CHUNK, n, (off_t)off) == (ssize_t)n &&
		       memcmp(buf, buf + CHUNK, n) == 0;
	}
	free(buf);
	return same;
}

int hm__version_load(struct hm__entry *e, struct hm_module *global,
	const struct hm__fileid *gid, struct hm_module *prev, struct hm_module **out)
{
	hm_loader *l = e->loader;
	struct hm__fileid id;
	struct hm__hooks hooks;
	struct hm_module *v;
	void *dl = NULL;
	int memfd = -1, rc;
	hm_ctx ctx;

	int64_t t0 = hm__now(), t1, t2;

	if ((rc = hm__copy_module(l, e->key, !e->is_global, global ? gid : NULL, &memfd,
		     &id)) != 0)
		return rc;
	/* touch, chmod, or the same build copied again: nothing to load. */
	if (prev && prev->global == global && prev->id.size == id.size &&
	    hm__same_bytes(memfd, prev->memfd, (size_t)id.size)) {
		close(memfd);
		return HM__SAME;
	}
	t1 = hm__now();
	if ((l->flags & HM_OPEN_PROBE) && (rc = hm__probe(l, memfd, e->key)) < 0)
		goto fail;
	if ((rc = hm__dlopen(&memfd, e->key, &dl)) < 0)
		goto fail;
	if ((rc = hm__read_desc(dl, memfd, e->key, &hooks)) < 0)
		goto fail;
	t2 = hm__now();
	if ((v = hm__slot_get(l)) == NULL) {
		rc = hm__fail(HM_ENOMEM, "%s: out of memory", e->key);
		goto fail;
	}
	/* Only the thread in e->loading_by gets here: next_gen is ours. */
	v->entry = e;
	v->global = global;
	v->hooks = hooks;
	v->plain = !global && !hooks.prepare && !hooks.commit && !hooks.rollback &&
		   !hooks.release && hooks.handle;
	atomic_store_explicit(&v->deferred, false, memory_order_relaxed);
	v->quiesce = NULL;
	v->state = NULL;
	v->dl = dl;
	v->memfd = memfd;
	v->gen = e->next_gen++;
	v->id = id;
	v->adopted = false;
	v->heir = NULL;
	if (global)
		atomic_fetch_add_explicit(&global->refs, 1, memory_order_relaxed);
	hm__slot_link(l, v);

	hm__init_ctx(&ctx, v, HM__PHASE_INIT);
	ctx.prev = prev;
	rc = hm__run_init(&ctx, v->hooks.init);
	v->copy_ns = (uint64_t)(t1 - t0);
	v->dlopen_ns = (uint64_t)(t2 - t1);
	v->init_ns = (uint64_t)(hm__now() - t2);
	if (rc < 0) {
		if (prev)
			prev->adopted = false; /* what it took is not taken */
		rc = hm__fail(HM_EINIT, "%s version %llu: init returned %d", e->key,
			(unsigned long long)v->gen, rc);
		e->next_gen--; /* numbers count versions that served */
		hm__slot_put(l, v);
		if (global)
			hm_put(global);
		goto fail;
	}
	/* No release needed: v is published later by a release exchange. */
	atomic_store_explicit(&v->refs, 1, memory_order_relaxed);
	if (prev && prev->adopted) {
		/* prev's requests still use the state: v's fini must wait for
		 * prev's.  The reference is put when prev is finalised. */
		atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
		prev->heir = v;
	}
	*out = v;
	return 0;
fail:
	if (dl) {
		char why[HM__MSG_MAX]; /* unloading may log; keep the reason */
		snprintf(why, sizeof why, "%s", hm__msg());
		hm__unload(e, 0, dl, memfd);
		hm__fail(rc, "%s", why);
	} else {
		close(memfd);
	}
	return rc;
}

static void hm__finalise(struct hm_module *v)
{
	hm_loader *l = v->entry->loader;
	struct hm__entry *e = v->entry;
	struct hm_module *global = v->global, *heir = v->heir;
	hm_ctx ctx;

	free(v->quiesce);
	v->quiesce = NULL;
	hm__init_ctx(&ctx, v, HM__PHASE_FINI);
	hm__run_fini(&ctx, v->hooks.fini);
	if (hm__unload(v->entry, v->gen, v->dl, v->memfd))
		hm__log(l, HM_LOG_INFO, "%s version %llu unloaded", v->entry->key,
			(unsigned long long)v->gen);
	/* That dlclose may have unloaded objects pinned before. */
	hm__pins_sweep(l, false);
	hm__slot_put(l, v);
	hm__entry_version_gone(e); /* last use of e: it may be freed now */
	/* After the module: a global outlives every version bound to it, and
	 * an heir every version whose state it adopted. */
	hm_put(heir);
	hm_put(global);
}

/* Defer v, found in a hazard slot or not known yet (wait); ver_lock held. */
static void hm__defer(hm_loader *l, struct hm_module *v, bool wait)
{
	v->queue_next = l->deferred;
	l->deferred = v;
	l->quiescing += wait;
}

/* Finalise v unless a dispatch still runs it (then defer it); no lock. */
static void hm__finalise_unless_held(hm_loader *l, struct hm_module *v)
{
	int held = hm__hazard_held(v);

	if (held != HM__HZ_FREE) {
		pthread_mutex_lock(&l->ver_lock);
		hm__defer(l, v, held == HM__HZ_WAIT);
		pthread_mutex_unlock(&l->ver_lock);
		return;
	}
	hm__finalise(v);
}

/* Look again at the deferred versions: a slot holding one was cleared. */
static void hm__reap_deferred(hm_loader *l)
{
	struct hm_module *v, *next;

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

void hm__hazard_wake(hm_loader *l)
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
		struct hm_module *v = l->reap_head;
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

void hm__version_retire(struct hm_module *v)
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

void hm__versions_free(hm_loader *l)
{
	struct hm_module *v;

	while ((v = l->free_slots) != NULL) {
		l->free_slots = v->queue_next;
		free(v);
	}
}

void hm__put_last(struct hm_module *v)
{
	/* In a child after fork() there is no reaper and the locks may be
	 * held by threads that do not exist: leak the copy instead. */
	if (!hm__forked(v->entry->loader))
		hm__version_retire(v);
}

void hm_put(hm_module *v)
{
	if (v)
		hm__put(v);
}

const char *hm_module_path(const hm_module *v)
{
	return v ? v->entry->key : NULL;
}

uint64_t hm_module_version(const hm_module *v)
{
	return v ? v->gen : 0;
}

void *hm_module_symbol(const hm_module *v, const char *name)
{
	if (!v || !name) {
		hm__fail(HM_EINVAL, "hm_module_symbol: NULL argument");
		return NULL;
	}
	void *sym = dlsym(v->dl, name);
	if (!sym)
		hm__fail(HM_ENOENT, "%s: no symbol '%s'", v->entry->key, name);
	return sym;
}
