/* SPDX-License-Identifier: MIT */
/*
 * pending.h - files to look at later, and files being written (pending.c).
 * l->pending is NULL in stat mode: then every function but
 * hm__pending_busy() and hm__pending_later() must not be called, and those
 * two do nothing.
 */
#ifndef HOTMOD_PENDING_H
#define HOTMOD_PENDING_H

#include "common.h"

/* What a file's last event says to do about it. */
enum hm__wait {
	HM__WAIT_MISSING, /* its grace runs: look when it ends */
	HM__WAIT_DELETED, /* removed: look when the delay ends, grace served */
	HM__WAIT_WRITING, /* being written: look when done, or still */
};

/* A look to take (the watcher's batch, and what is due). */
struct hm__look {
	char *key;
	int flags;     /* hm__entry_refresh() flags */
	bool check;    /* a quiet writer's file: complete yet? */
	int64_t wrote; /* check: its last write, to tell a newer one */
};
struct hm__looks {
	struct hm__look *v;
	size_t n, cap;
};

HM__HIDDEN int hm__pending_init(hm_loader *l);
HM__HIDDEN void hm__pending_free(hm_loader *l);
/* An event: key is being written, removed or missing (look after the
 * removal delay).  false: no memory (the caller rescans). */
HM__HIDDEN bool hm__pending_set(hm_loader *l, const char *key, enum hm__wait why);
/* A complete file is in place (closed, renamed in): no longer pending. */
HM__HIDDEN void hm__pending_clear(hm_loader *l, const char *key);
/* Look at key again, with flags, when the removal delay ends. */
HM__HIDDEN void hm__pending_later(hm_loader *l, const char *key, int flags);
/* Is key being written or just removed (its pending look comes later)? */
HM__HIDDEN bool hm__pending_busy(hm_loader *l, const char *key);
/* Drop from looks those whose files are busy: their pending look comes. */
HM__HIDDEN void hm__pending_drop_busy(hm_loader *l, struct hm__looks *looks);
/* Move what is due into out; a quiet writer's file stays pending and gets
 * a look with check set.  false: some were lost (no memory). */
HM__HIDDEN bool hm__pending_due(hm_loader *l, struct hm__looks *out);
/* hm__now() when the next look is due, -1 if none. */
HM__HIDDEN int64_t hm__pending_next(hm_loader *l);
/* A check look (k) found its file incomplete or not: is it still the one
 * due (no event since)?  Then a complete file is no longer pending. */
HM__HIDDEN bool hm__pending_quiet(hm_loader *l, const struct hm__look *k, bool incomplete);

#endif /* HOTMOD_PENDING_H */
