/* SPDX-License-Identifier: MIT */
/*
 * file.h - the checks every file passes on its way in, and its copy
 * (file.c), under the rule for a file at rest (rest.c).
 */
#ifndef HOTMOD_FILE_H
#define HOTMOD_FILE_H

#include "common.h"

/* What identifies one content of one file, as seen by fstat. */
struct hm__fileid {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

HM__HIDDEN void hm__fileid_of(struct hm__fileid *id, const struct stat *st);
HM__HIDDEN bool hm__fileid_eq(const struct hm__fileid *a, const struct hm__fileid *b);
/* Check a directory or file's owner and mode against the loader's trust. */
HM__HIDDEN int hm__check_perms(const hm_loader *l, const struct stat *st,
	const char *what);
/*
 * Open key ("a/b.so") beneath the root, check the root, every directory and
 * link on the way and the file, copy it into a sealed memfd once it is at
 * rest (rest.c says when).  Returns the memfd and the identity of the
 * file that was copied.  For a module (gkey: the key of its directory's
 * global module; NULL for a global), HM__GLOBAL_MOVED when the directory
 * it was found in does not hold global now (NULL: no global module), with
 * no message and no memfd.
 */
HM__HIDDEN int hm__copy_module(hm_loader *l, const char *key, const char *gkey,
	const struct hm__fileid *global, int *memfd, struct hm__fileid *id);
/* The bytes of fd (the embedder's substitute for key, hm_options.admit)
 * into a sealed, checked memfd, and their number in *size. */
HM__HIDDEN int hm__copy_fd(hm_loader *l, int fd, const char *key, int *memfd,
	uint64_t *size);
/* Open key for reading with the checks hm__copy_module() makes, without
 * copying it: the descriptor, and its stat in *st. */
HM__HIDDEN int hm__open_key(hm_loader *l, const char *key, struct stat *st);
/* Identity of key now, without opening it; HM_ENOENT, with no message,
 * when it is gone.  hm__no_file() sets the message and returns HM_ENOENT. */
HM__HIDDEN int hm__no_file(const hm_loader *l, const char *key);
HM__HIDDEN int hm__stat_key(const hm_loader *l, const char *key,
	struct hm__fileid *id);

/* ---- a file at rest (rest.c) ---------------------------------------------------- */

/* Step 1: wait until fd's (key's) ctime has settled; *st: its fstat then. */
HM__HIDDEN int hm__settle(const char *key, int fd, struct stat *st);
/* Step 3: has anyone fd's file open for writing?  1 yes, 0 no, -1 cannot tell. */
HM__HIDDEN int hm__writer(int fd);
/* Step 4: does fd (key's) still hold the size bytes copied into mfd?  1, 0,
 * or an error code. */
HM__HIDDEN int hm__still_copied(int fd, int mfd, off_t size, const char *key);

#endif /* HOTMOD_FILE_H */
