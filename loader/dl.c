/* SPDX-License-Identifier: MIT */
/*
 * dl.c - the dynamic linker's side of a version: dlopen of the sealed
 * memfd under a name no loaded object has, the descriptor read and checked
 * against what is really mapped, and dlclose with the check that the
 * object really left the process (pins, when it did not).
 */
#include "loader.h"
#include "elfcheck.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
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
int hm__dl_open(int *memfd, const char *key, void **dl)
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
			return hm__fail_errno(errno, HM_ESYS, "%s: dup", key);
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

static bool hm__mapped(const void *addr, size_t len, const struct link_map *lm,
	unsigned need)
{
	struct hm__where w = {(uintptr_t)addr, len, lm, need};

	return dl_iterate_phdr(hm__where_cb, &w) != 0;
}

/*
 * How many bytes from addr on are inside one readable loaded segment of
 * lm, counted up to max: 0 when addr is in none.  For a string the module
 * points to, read no further than this.
 */
struct hm__extent {
	uintptr_t addr;
	const struct link_map *lm;
	size_t avail;
};

static int hm__extent_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct hm__extent *x = arg;

	(void)size;
	if (info->dlpi_addr != x->lm->l_addr || info->dlpi_name != x->lm->l_name)
		return 0;
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_R) && x->addr >= lo &&
		    x->addr - lo < ph->p_memsz) {
			size_t here = ph->p_memsz - (x->addr - lo);
			if (here > x->avail)
				x->avail = here;
		}
	}
	return 1;
}

static size_t hm__readable(const void *addr, const struct link_map *lm, size_t max)
{
	struct hm__extent x = {(uintptr_t)addr, lm, 0};

	dl_iterate_phdr(hm__extent_cb, &x);
	return x.avail < max ? x.avail : max;
}

/*
 * The descriptor's request kind, read as defensively as the rest: it must
 * point into the module's own readable segments and be a string of the
 * rule (hotmod.h) ending there.  *kind: the string, or NULL when the
 * module's descriptor has no such member or leaves it NULL.
 */
static int hm__dl_kind(const struct hm_module_desc *copy, uint32_t size,
	const struct link_map *lm, const char *key, const char **kind)
{
	const char *k;
	size_t avail, n;

	*kind = NULL;
	if (size < offsetof(struct hm_module_desc, request_kind) + sizeof copy->request_kind ||
	    (k = copy->request_kind) == NULL)
		return 0;
	if ((avail = hm__readable(k, lm, HM_REQUEST_KIND_MAX + 1)) == 0)
		return hm__fail(HM_ENODESC, "%s: its request_kind points outside the module's "
					    "own loaded data: the file is corrupt", key);
	n = strnlen(k, avail);
	if (n == avail)
		return hm__fail(HM_ENODESC, "%s: its request_kind is not a string of at most "
					    HM__NUM(HM_REQUEST_KIND_MAX) " bytes", key);
	if (!hm__request_kind_okn(k, n))
		return hm__fail(HM_ENODESC, "%s: its request_kind '%s' is not 1 to "
					    HM__NUM(HM_REQUEST_KIND_MAX) " bytes of visible "
					    "ASCII (no space, no control byte)", key, k);
	*kind = k;
	return 0;
}

/*
 * Read the descriptor into hooks and its request kind into *kind (NULL when
 * it declares none); the module may know fewer members.  Not
 * found with dlsym(): glibc's symbol lookup trusts the object's hash and
 * symbol tables, and a corrupt one crashes it (fuzzing found it, also where
 * HM_OPEN_PROBE's lookup in another process passed: the read that faults
 * there depends on where the object is mapped).  The loader reads the
 * symbol table from the sealed copy itself, every read bounded by the file.
 */
int hm__dl_hooks(void *dl, int memfd, const char *key, struct hm__hooks *hooks,
	const char **kind)
{
	const struct hm_module_desc *d;
	struct hm_module_desc copy;
	struct link_map *lm;
	uint64_t value;
	int rc;

	if ((rc = hm__elf_symbol(memfd, HM_MODULE_SYMBOL, &value)) == HM_ENODESC)
		return hm__fail(HM_ENODESC, "%s: no '%s' symbol: define the descriptor "
					    "with HM_MODULE()", key, HM_MODULE_SYMBOL);
	if (rc == HM_ENOMEM)
		return hm__fail(rc, "%s: reading its symbol table: out of memory", key);
	if (rc < 0)
		return hm__fail_errno(errno, rc, "%s: reading its symbol table", key);
	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0) {
		const char *why = dlerror();
		return hm__fail(HM_ESYS, "%s: dlinfo: %s", key, why ? why : "unknown error");
	}
	d = (const struct hm_module_desc *)(lm->l_addr + (uintptr_t)value);
	if ((uintptr_t)d % _Alignof(struct hm_module_desc) != 0 ||
	    !hm__mapped(d, HM__DESC_MIN, lm, PF_R))
		return hm__fail(HM_ENODESC, "%s: its '%s' symbol does not point into the "
					    "module's own loaded data: the file is corrupt",
			key, HM_MODULE_SYMBOL);
	if (d->abi != HM_ABI_VERSION)
		return hm__fail(HM_EABI, "%s: built for module ABI %u, this loader has %u",
			key, (unsigned)d->abi, (unsigned)HM_ABI_VERSION);
	if (d->size < HM__DESC_MIN || d->size > HM__DESC_MAX || !hm__mapped(d, d->size, lm, PF_R))
		return hm__fail(HM_EABI, "%s: descriptor size %u is not plausible",
			key, (unsigned)d->size);
	memset(&copy, 0, sizeof copy);
	memcpy(&copy, d, d->size < sizeof copy ? d->size : sizeof copy);
	if ((rc = hm__dl_kind(&copy, d->size, lm, key, kind)) < 0)
		return rc;
	*hooks = (struct hm__hooks){
		.init = copy.init,
		.fini = copy.fini,
		.prepare = copy.prepare,
		.handle = copy.handle,
		.commit = copy.commit,
		.rollback = copy.rollback,
		.release = copy.release,
	};
	/* Hooks are code of some loaded object (the module's, as a rule).
	 * In the descriptor's order, which hm__hook_name() follows. */
	const void *const code[HM__HOOKS] = {(const void *)(uintptr_t)hooks->init,
		(const void *)(uintptr_t)hooks->fini, (const void *)(uintptr_t)hooks->prepare,
		(const void *)(uintptr_t)hooks->handle, (const void *)(uintptr_t)hooks->commit,
		(const void *)(uintptr_t)hooks->rollback, (const void *)(uintptr_t)hooks->release};
	for (unsigned i = 0; i < HM__HOOKS; i++)
		if (code[i] && !hm__mapped(code[i], 1, NULL, PF_X))
			return hm__fail(HM_ENODESC, "%s: its %s hook points outside any "
						    "loaded code: the file is corrupt", key,
				hm__hook_name(i));
	return 0;
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
	uint64_t number;      /* 0: a failed load */
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

static void hm__pin_add(hm_loader *l, const char *key, uint64_t number, int memfd)
{
	size_t len = strlen(key) + 1;
	struct hm__pin *p = malloc(sizeof *p + len);

	if (!p) /* then the memfd stays open for good, as the name demands */
		return;
	p->memfd = memfd;
	p->loader = l;
	p->number = number;
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
		if (p->number)
			hm__log(l, HM_LOG_INFO, "%s version %llu was unloaded at last: "
						"no longer pinned", p->key, (unsigned long long)p->number);
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
bool hm__dl_close(struct hm__entry *e, uint64_t number, void *dl, int memfd)
{
	hm_loader *l = e->loader;
	const char *key = e->key;

	dlclose(dl);
	if (hm__still_mapped(memfd)) {
		pthread_mutex_lock(&l->ver_lock);
		l->pinned++; /* before a sweep can count it out */
		pthread_mutex_unlock(&l->ver_lock);
		hm__pin_add(l, key, number, memfd);
		pthread_mutex_lock(&e->lock);
		e->pinned++;
		pthread_mutex_unlock(&e->lock);
		if (number)
			hm__log(l, HM_LOG_WARN,
				"%s version %llu could not be unloaded: it stays mapped (pinned)",
				key, (unsigned long long)number);
		else
			hm__log(l, HM_LOG_WARN,
				"%s: a failed load could not be unloaded: it stays mapped (pinned)",
				key);
		return false;
	}
	close(memfd);
	return true;
}
