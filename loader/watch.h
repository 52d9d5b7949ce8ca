/* SPDX-License-Identifier: MIT */
/*
 * watch.h - noticing changes: inotify (watch.c) and the tree scan shared by
 * every way a change is noticed (scan.c).
 */
#ifndef HOTMOD_WATCH_H
#define HOTMOD_WATCH_H

#include "common.h"

/* ---- the watcher (watch.c) ------------------------------------------------------ */

/* Start watching per the options; sets l->watch or leaves stat mode. */
HM__HIDDEN int hm__watch_start(hm_loader *l, int mode);
HM__HIDDEN void hm__watch_stop(hm_loader *l);
/* hm__scan(), watching every directory it finds when there is a watcher. */
HM__HIDDEN void hm__watch_scan(hm_loader *l, bool preload);
HM__HIDDEN uint64_t hm__watch_rescans(const hm_loader *l);

/* ---- scanning and looking (scan.c) ------------------------------------------------ */

/* What a scan does with each directory before it lists it (or NULL). */
typedef bool hm__dir_fn(hm_loader *l, const char *dir);
/* Walk the tree under the root: look at what is known again (also what is
 * no longer in the tree), load every module if preload. */
HM__HIDDEN void hm__scan(hm_loader *l, bool preload, hm__dir_fn *on_dir);
/* The same for directory dir ("" or "a/b/", checked), and for its
 * subdirectory name (checked here: skipped and logged if the rule says). */
HM__HIDDEN void hm__scan_dir(hm_loader *l, const char *dir, bool preload,
	hm__dir_fn *on_dir);
HM__HIDDEN void hm__scan_sub(hm_loader *l, const char *dir, const char *name,
	bool preload, hm__dir_fn *on_dir);
/* Something happened to the file key: look at it if the cache knows it;
 * an unknown module is loaded on its first request, or now if preload. */
HM__HIDDEN void hm__look_at(hm_loader *l, const char *key, int flags, bool preload);
/* A name in dir the rule refuses (why: hm__name_why): logged, a few a minute. */
HM__HIDDEN void hm__skip_log(hm_loader *l, const char *dir, const char *name,
	bool is_dir, int why);

#endif /* HOTMOD_WATCH_H */
